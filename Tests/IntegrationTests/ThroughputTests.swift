import Foundation
import Testing
import TestSupport

extension Integration {
    @Suite("Aggregation over two shaped links")
    struct Throughput {
        /// A plain-TCP client behind the relay gets more than one link can carry: the relay's
        /// MPTCP upstream really spreads over both WANs. The bound (1.3 x one link) is
        /// functional, far from the ~1.9 x expected, not a benchmark.
        @Test func aggregatesTwoLinks() async throws {
            try await withEnv(wans: 2, rateMbit: 30) { env in
                let joinsBefore = try await Net.counter("MPTcpExtMPJoinSynRx", ns: env.tb.srvNS)
                let iperf = try await env.server(["iperf3", "-s", "-p", "5201", "-1"], port: 5201, mptcp: true, log: "iperf3-s.log")
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):5201", upstream: "\(env.tb.srvIP):5201")
                let r = try await env.lan(["iperf3", "-c", env.tb.gwLanIP, "-p", "5201", "-t", "8", "-J"], timeout: 60)
                try #require(r.succeeded, "iperf3 client failed: \(r.summary)\nrelay log:\n\(tail(relay.log))")
                let bps = try receivedBitsPerSecond(iperfJSON: r.stdout)
                let oneLink = Double(env.tb.rateMbit) * 1e6
                print("aggregation: \(Int(bps / 1e6)) Mbit/s through the relay over 2 x \(env.tb.rateMbit) Mbit/s")
                #expect(bps > 1.3 * oneLink,
                        "through the relay: \(Int(bps / 1e6)) Mbit/s, one link is \(env.tb.rateMbit) Mbit/s")
                let joinsAfter = try await Net.counter("MPTcpExtMPJoinSynRx", ns: env.tb.srvNS)
                #expect(joinsAfter > joinsBefore, "no MP_JOIN reached the server: the upstream used one path")
                #expect(await relay.waitForLog("mptcp=yes"), "relay log lacks mptcp=yes:\n\(tail(relay.log))")
                await relay.stop()
                await iperf.stop()
            }
        }
    }
}

/// end.sum_received.bits_per_second from `iperf3 -J`.
func receivedBitsPerSecond(iperfJSON: String) throws -> Double {
    guard let obj = try JSONSerialization.jsonObject(with: Data(iperfJSON.utf8)) as? [String: Any],
          let end = obj["end"] as? [String: Any],
          let sum = end["sum_received"] as? [String: Any],
          let bps = sum["bits_per_second"] as? Double
    else { throw ProcError("no end.sum_received.bits_per_second in iperf3 output: \(iperfJSON.prefix(500))") }
    return bps
}
