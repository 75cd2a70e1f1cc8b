import Foundation
import Testing
import TestSupport

extension Integration {
    /// Issue 8, finding 2: connections still sending their tunnel header must not starve the
    /// tunnel server. One source (the LAN host, 192.168.50.2) opens 2,000 connections and
    /// sends one byte of header on each; a legitimate gateway from another source (the
    /// gateway's WAN address, 10.1.0.1) must still be served, byte-exact, within its connect
    /// timeout. The server's connection budget is lowered to 1,000 so that 2,000 trickling
    /// clients exceed it (the default 8,192 would need a flood four times larger).
    @Suite("Tunnel server under a header-trickling flood (issue 8)")
    struct TunnelFlood {
        @Test func floodFromOneSourceDoesNotStarveAnother() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                let script = try writeHardeningScript(env)
                let webIP = Integration.Hardening.webIP
                let key = try TunnelSetup.writeKey(env.tmp.file("tunnel.key"))
                _ = try await Proc.check(in: env.tb.srvNS, ["ip", "addr", "add", "\(webIP)/32", "dev", "lo"])
                let server = try await startHardeningTunnelServer(env, key: key, ["--allow", "\(webIP)/32", "--max-connections", "1000",
                                                                         "--connect-timeout", "10"])
                let body = 1_000_000
                _ = try await env.serverIn(["python3", script, "serve-blob", "--bind", webIP, "--port", "9200", "--bytes", "\(body)"],
                                           port: 9200, log: "blob.log")
                let bin = try await RelayBinary.path()
                _ = try await Proc.check(in: env.tb.gwNS, ["sysctl", "-qw", "net.ipv4.tcp_fastopen=3"])
                let gateway = try await env.daemon(in: env.tb.gwNS, [bin, "run", "--listen", "0.0.0.0:7000", "--redirect", "--via", "\(env.tb.srvIP):4000",
                                                                      "--key-file", key, "--connect-timeout", "5"], port: 7000, log: "gateway.log")
                _ = try await Proc.check(in: env.tb.gwNS, ["nft", "table ip it_redirect { chain pre { type nat hook prerouting priority dstnat; iifname \"lan0\" tcp dport 9200 redirect to :7000; }; }"])

                // Before the flood: the path works.
                let first = try await env.lan(["python3", script, "fetch-blob", "--host", webIP, "--port", "9200", "--bytes", "\(body)", "--timeout", "60"], timeout: 90)
                try #require(first.stdout.hasPrefix("got=\(body) match=yes"), "the tunnel does not work even without a flood: \(first.stdout)\n\(tail(gateway.log))")

                let flag = env.tmp.file("flood-stop")
                // Ended or refused connections are replaced, up to 1,000 a second, as an attacker would
                // (the issue: 820 a second hold 8,192 slots under a 10 s header deadline).
                let flood = try BackgroundProcess(in: env.tb.lanNS, ["python3", script, "flood", "--host", env.tb.srvIP, "--port", "4000", "--n", "2000",
                                                                     "--rate", "1000", "--hold", "90", "--flag", flag.path], log: env.tmp.file("flood.log"))
                env.started.add(flood)
                try await waitFor("the flood's connections", timeout: 60) { flood.log.contains("flood connected") || !flood.isRunning }
                // "flood connected N reset-at-once M ...": accepted and held, or accepted and reset.
                let fields = (line(flood.log, prefix: "flood connected ") ?? "").split(separator: " ")
                let connected = (Int(fields.first ?? "") ?? 0) + (fields.count > 2 ? Int(fields[2]) ?? 0 : 0)
                try #require(connected >= 1000, "the server took only \(connected) of the flood's connections: no pressure was applied\n\(flood.log)")

                // While the flood holds its connections: five fetches through the gateway, each
                // bounded by the gateway's 5 s connect timeout (a starved server makes the
                // gateway reset its client).
                var results: [String] = []
                for _ in 0..<5 {
                    let r = try await env.lan(["python3", script, "fetch-blob", "--host", webIP, "--port", "9200", "--bytes", "\(body)", "--timeout", "60"], timeout: 90)
                    results.append(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
                }
                try Files.write("stop\n", to: flag)
                _ = await flood.waitForExit(timeout: 20)
                print("tunnel flood: \(connected) trickling connections from \(env.tb.lanIP); \(line(flood.log, prefix: "flood done ") ?? "flood did not finish"); legitimate fetches: \(results.filter { $0.hasPrefix("got=\(body) match=yes") }.count)/5 served")
                #expect(results.allSatisfy { $0.hasPrefix("got=\(body) match=yes") },
                        "the legitimate gateway was not served during the flood:\n\(results.joined(separator: "\n"))\ngateway:\n\(tail(gateway.log, lines: 10))\nserver:\n\(tail(server.log, lines: 10))")
                // Per connection (naming the source) or summed up per second.
                #expect(await server.waitForLine { $0.contains("refused") && ($0.contains(env.tb.lanIP) || $0.contains("per-source")) },
                        "the server logged no refusal for the flooding source \(env.tb.lanIP):\n\(tail(server.log, lines: 10))")
                #expect(server.isRunning, "the tunnel server died:\n\(tail(server.log))")
                #expect(gateway.isRunning)
            }
        }
    }
}
