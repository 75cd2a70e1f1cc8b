import Testing

/// Which sockets each scope converts, in the program itself, in a fork()ed child and in an
/// exec()ed child (the environment carries the configuration), with options kept across a swap.
@Suite struct ScopeTests {
    static let p1 = 7001, p2 = 7002

    struct Case: Sendable, CustomTestStringConvertible {
        let env: [String: String]
        /// Protocols expected for: listen P1, connect P1, listen P2, connect P2.
        let expected: [Int]
        var testDescription: String { env.isEmpty ? "default" : env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
    }

    static let mptcp = 262, tcp = 6
    static let cases: [Case] = [
        Case(env: [:], expected: [mptcp, mptcp, mptcp, mptcp]),
        Case(env: ["MPTCPIZE_SCOPE": "listen"], expected: [mptcp, tcp, mptcp, tcp]),
        Case(env: ["MPTCPIZE_SCOPE": "connect"], expected: [tcp, mptcp, tcp, mptcp]),
        Case(env: ["MPTCPIZE_PORTS": "\(p1)"], expected: [mptcp, mptcp, tcp, tcp]),
        Case(env: ["MPTCPIZE_EXCLUDE_PORTS": "1-\(p1)"], expected: [tcp, tcp, mptcp, mptcp]),
        Case(env: ["MPTCPIZE_SCOPE": "listen", "MPTCPIZE_PORTS": "\(p2),9000-9100"], expected: [tcp, tcp, mptcp, tcp]),
        // A typo converts nothing rather than more than asked.
        Case(env: ["MPTCPIZE_SCOPE": "lisen"], expected: [tcp, tcp, tcp, tcp]),
    ]

    @Test(arguments: cases)
    func scopeDecidesPerSocketAndSurvivesForkAndExec(_ scope: Case) throws {
        try Build.require()
        let dir = try ScratchDir()
        defer { dir.remove() }
        let probe = try dir.write("probe.py", Scripts.probe)
        let outcome = try NetnsPair.with { pair in
            try run(NetnsPair.exec(pair.client, env: scope.env.merging(["LD_PRELOAD": Build.library]) { $1 },
                                   ["/usr/bin/python3", probe, "\(Self.p1)", "\(Self.p2)"]))
        }
        try #require(outcome.status == 0, "\(outcome.summary)")

        let lines = outcome.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        for place in ["parent", "fork", "exec"] {
            let mine = lines.filter { $0.first == place }
            let protocols = mine.map { Int($0[3]) ?? -1 }
            #expect(protocols == scope.expected, "\(place): \(mine)")
            // Options the program set before listen()/connect() are still there after a swap.
            for line in mine {
                let attributes = line.dropFirst(4)
                #expect(attributes.allSatisfy { $0.hasSuffix("=1") }, "\(place): lost an option: \(line)")
            }
        }
    }
}
