import Testing

/// Many threads creating (and half of them connecting) sockets at once under the shim: no crash,
/// no deadlock (the child would be killed and reported hung), every socket of the expected kind.
@Suite struct ConcurrencyTests {
    static let threads = 32, rounds = 100

    @Test(arguments: [[String: String](), ["MPTCPIZE_SCOPE": "connect"]])
    func manyThreadsOpenSocketsAtOnce(_ env: [String: String]) throws {
        try Build.require()
        let dir = try ScratchDir()
        defer { dir.remove() }
        let script = try dir.write("stress.py", Scripts.stress)
        let outcome = try NetnsPair.with { pair in
            try run(NetnsPair.exec(pair.client, env: env.merging(["LD_PRELOAD": Build.library]) { $1 },
                                   ["/usr/bin/python3", script, "\(Self.threads)", "\(Self.rounds)"]), timeout: 180)
        }
        #expect(outcome.status == 0, "\(outcome.summary) \(outcome.stdout)")
        let half = Self.threads * Self.rounds / 2
        // Default: every stream socket is MPTCP from socket() on. Connect scope: only the
        // connected ones, swapped at connect() concurrently in all threads.
        let unconnected = env.isEmpty ? 262 : 6
        #expect(outcome.stdout == "connected 262 \(half)\nunconnected \(unconnected) \(half)\n", "\(outcome.stdout)")
    }
}
