import Foundation
import Testing

/// Debian's curl/wget fetching from Debian's python3 http.server, both under the shim, across
/// two namespaces: bytes must arrive intact, and the server's kernel must have seen MPTCP
/// (or, with net.mptcp.enabled=0, must not have, while everything still works).
@Suite(.serialized) struct HTTPTransferTests {
    static let port = 8000

    enum Client: String, CaseIterable, Sendable {
        case curl, wget

        func command(url: String, output: String) -> [String] {
            switch self {
            case .curl: ["curl", "-sS", "--fail", "-o", output, url]
            case .wget: ["wget", "-q", "-O", output, url]
            }
        }
    }

    struct Transfer {
        let serverStderr: String
        let clientStderr: String
        let counters: [String: Int]
        let mptcpListeners: String
    }

    /// Serves a 2 MiB random file and fetches it; checks the SHA-256 and returns what was seen.
    func transfer(_ client: Client, mptcpEnabled: Bool) throws -> Transfer {
        try Build.require()
        let dir = try ScratchDir()
        defer { dir.remove() }
        let www = dir.file("www")
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try runChecked(["sh", "-c", "head -c 2097152 /dev/urandom > '\(www)/blob'"])

        return try NetnsPair.with(mptcpEnabled: mptcpEnabled) { pair in
            let server = try Child(NetnsPair.exec(pair.server, [
                Build.cli, "run", "-d", "/usr/bin/python3", "-m", "http.server", "\(Self.port)",
                "--bind", NetnsPair.serverAddress, "--directory", www,
            ]))
            defer { _ = server.stop() }
            try NetnsPair.waitForListener(pair.server, port: Self.port)
            let listeners = try runChecked(["ip", "netns", "exec", pair.server, "ss", "-Mln"]).stdout

            let output = dir.file("received")
            let url = "http://\(NetnsPair.serverAddress):\(Self.port)/blob"
            let fetched = try run(NetnsPair.exec(pair.client, [Build.cli, "run", "-d"] + client.command(url: url, output: output)))
            #expect(fetched.status == 0, "\(fetched.summary)")
            #expect(try sha256(ofFile: output) == sha256(ofFile: "\(www)/blob"), "body differs")

            let counters = try NetnsPair.mptcpCounters(pair.server)
            return Transfer(serverStderr: server.stop().stderr, clientStderr: fetched.stderr,
                            counters: counters, mptcpListeners: listeners)
        }
    }

    @Test(arguments: Client.allCases)
    func transferUsesMPTCP(_ client: Client) throws {
        let seen = try transfer(client, mptcpEnabled: true)
        #expect(seen.counters["MPCapableSYNRX", default: 0] >= 1, "server saw no MP_CAPABLE SYN: \(seen.counters)")
        #expect(seen.counters["MPCapableACKRX", default: 0] >= 1, "server saw no MP_CAPABLE ACK: \(seen.counters)")
        #expect(seen.mptcpListeners.contains(":\(Self.port)"), "`ss -M` lists no MPTCP listener: \(seen.mptcpListeners)")
        #expect(seen.clientStderr.contains("stream socket is MPTCP"), "\(seen.clientStderr)")
        #expect(seen.serverStderr.contains("stream socket is MPTCP"), "\(seen.serverStderr)")
    }

    @Test(arguments: Client.allCases)
    func transferFallsBackWhenMPTCPIsDisabled(_ client: Client) throws {
        let seen = try transfer(client, mptcpEnabled: false)
        #expect(seen.counters["MPCapableSYNRX", default: 0] == 0, "\(seen.counters)")
        #expect(!seen.mptcpListeners.contains(":\(Self.port)"), "\(seen.mptcpListeners)")
        #expect(seen.clientStderr.contains("fell back to TCP"), "client did not report the fallback: \(seen.clientStderr)")
        #expect(seen.serverStderr.contains("fell back to TCP"), "server did not report the fallback: \(seen.serverStderr)")
    }

    /// The gap this shim closes: the classic mptcpize, where installed, breaks the same program.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/mptcpize"), "the classic mptcpize is not installed"))
    func classicMptcpizeBreaksWhereOursFallsBack() throws {
        try NetnsPair.with(mptcpEnabled: false) { pair in
            let classic = try run(NetnsPair.exec(pair.client, ["/usr/bin/mptcpize", "run", "/usr/bin/python3", "-c",
                                                               "import socket; socket.socket()"]))
            #expect(classic.status != 0, "classic mptcpize unexpectedly worked with net.mptcp.enabled=0")
            let ours = try run(NetnsPair.exec(pair.client, [Build.cli, "run", "/usr/bin/python3", "-c",
                                                            "import socket; socket.socket()"]))
            #expect(ours.status == 0, "\(ours.summary)")
        }
    }
}
