@testable import RelayAdmin
@testable import RelayCore
import Testing

/// Issue 25: the workers count connection events in counters of their own; a scrape sums
/// them into the series swift-metrics used to give, under the same names and labels.
@Suite struct ListenerMetricsTests {
    @Test func workersCountsAreOneSeriesPerListener() {
        let w0 = WorkerCounters().register(listener: "127.0.0.1:80", mode: "forward")
        let w1 = WorkerCounters().register(listener: "127.0.0.1:80", mode: "forward")
        let other = WorkerCounters().register(listener: "[::]:443", mode: "server")
        w0.countAccepted()
        w1.countAccepted()
        other.countAccepted()
        w0.count(MPTCPOutcome.mptcp)
        w1.count(MPTCPOutcome.fallbackPeer)
        w1.count(CloseReason.completed.cause)
        w0.countConnect(nanoseconds: 2_000_000)
        w1.countConnect(nanoseconds: 20_000_000)
        let metrics = AdminMetrics()
        let perListener = AdminMetrics.sum([w0, other, w1])
        #expect(perListener.map(\.key.listener) == ["127.0.0.1:80", "[::]:443"])
        metrics.advanceListenerCounters(perListener)
        let text = metrics.registry.emitToString() + AdminMetrics.connectHistogram(perListener)
        let labels = #"listener="127.0.0.1:80",mode="forward""#
        #expect(text.contains("mptcp_relay_connections_accepted_total{\(labels)} 2"), "\(text)")
        #expect(text.contains(#"mptcp_relay_connections_accepted_total{listener="[::]:443",mode="server"} 1"#))
        #expect(text.contains("mptcp_relay_connections_mptcp_total{\(labels),outcome=\"mptcp\"} 1"))
        #expect(text.contains("mptcp_relay_connections_mptcp_total{\(labels),outcome=\"fallback_peer\"} 1"))
        #expect(text.contains("mptcp_relay_connections_closed_total{\(labels),reason=\"done\"} 1"))
        #expect(!text.contains("reason=\"refused\""), "a series appears once it counts something")
        // Cumulative buckets, as a Prometheus histogram has them.
        #expect(text.contains("mptcp_relay_upstream_connect_seconds_bucket{\(labels),le=\"0.001\"} 0"), "\(text)")
        #expect(text.contains("mptcp_relay_upstream_connect_seconds_bucket{\(labels),le=\"0.005\"} 1"))
        #expect(text.contains("mptcp_relay_upstream_connect_seconds_bucket{\(labels),le=\"0.025\"} 2"))
        #expect(text.contains("mptcp_relay_upstream_connect_seconds_bucket{\(labels),le=\"+Inf\"} 2"))
        #expect(text.contains("mptcp_relay_upstream_connect_seconds_sum{\(labels)} 0.022"))
        #expect(text.contains("mptcp_relay_upstream_connect_seconds_count{\(labels)} 2"))
        #expect(!text.contains("mptcp_relay_upstream_connect_seconds_count{listener=\"[::]:443\""))
        // A second scrape after more events: counters advance by what was added, not twice.
        w1.countAccepted()
        metrics.advanceListenerCounters(AdminMetrics.sum([w0, other, w1]))
        #expect(metrics.registry.emitToString().contains("mptcp_relay_connections_accepted_total{\(labels)} 3"))
    }
}
