import Prometheus
import RelayCore

/// The per-listener series: every worker's ListenerCounters, summed by labels at scrape time.
/// A series appears once its count is above zero, as it did when each event was a
/// swift-metrics event.
extension AdminMetrics {
    struct ListenerKey: Hashable, Comparable {
        let listener: String
        let mode: String

        static func < (a: ListenerKey, b: ListenerKey) -> Bool { (a.listener, a.mode) < (b.listener, b.mode) }

        var labels: [(String, String)] { [("listener", listener), ("mode", mode)] }
    }

    /// Every worker's counts under each (listener, mode), in label order.
    static func sum(_ counters: [ListenerCounters]) -> [(key: ListenerKey, counts: ListenerCounts)] {
        var sums: [ListenerKey: ListenerCounts] = [:]
        for c in counters {
            let key = ListenerKey(listener: c.listener, mode: c.mode)
            sums[key] = (sums[key] ?? ListenerCounts()) + c.counts
        }
        return sums.sorted { $0.key < $1.key }.map { (key: $0.key, counts: $0.value) }
    }

    func advanceListenerCounters(_ perListener: [(key: ListenerKey, counts: ListenerCounts)]) {
        for (key, sum) in perListener {
            for (direction, value) in [("up", sum.bytesUp), ("down", sum.bytesDown)] where value > 0 {
                advance("mptcp_relay_bytes_total", key.labels + [("direction", direction)], to: value,
                        help: "Bytes relayed, counted as they move (open connections included).")
            }
            if sum.accepted > 0 {
                advance("mptcp_relay_connections_accepted_total", key.labels, to: sum.accepted, help: "Clients accepted.")
            }
            for (outcome, value) in zip(MPTCPOutcome.allCases, sum.outcomes) where value > 0 {
                advance("mptcp_relay_connections_mptcp_total", key.labels + [("outcome", outcome.rawValue)], to: value,
                        help: "The MPTCP side of each connection, by outcome (mptcp_lost: counted again at close when MPTCP fell back on the way).")
            }
            for (reason, value) in zip(ListenerCounts.closeReasons, sum.closes) where value > 0 {
                advance("mptcp_relay_connections_closed_total", key.labels + [("reason", reason)], to: value,
                        help: "Connections ended, by reason.")
            }
        }
    }

    /// mptcp_relay_upstream_connect_seconds in the text format swift-prometheus gives its own
    /// histograms (cumulative buckets, +Inf, sum, count); written here because its histograms
    /// take observations one at a time, and the workers' buckets arrive as totals.
    static func connectHistogram(_ perListener: [(key: ListenerKey, counts: ListenerCounts)]) -> String {
        let name = "mptcp_relay_upstream_connect_seconds"
        let observed = perListener.filter { $0.counts.connects.contains { $0 > 0 } }
        guard !observed.isEmpty else { return "" }
        var text = "# HELP \(name) Upstream connect latency: submitted connect to completion.\n# TYPE \(name) histogram\n"
        for (key, sum) in observed {
            let labels = "listener=\"\(key.listener)\",mode=\"\(key.mode)\""
            var cumulative: UInt64 = 0
            for (bound, count) in zip(ListenerCounters.connectBounds, sum.connects) {
                cumulative += count
                text += "\(name)_bucket{\(labels),le=\"\(Duration.nanoseconds(bound).bucketRepresentation)\"} \(cumulative)\n"
            }
            let total = cumulative + sum.connects[ListenerCounters.connectBounds.count]
            text += "\(name)_bucket{\(labels),le=\"+Inf\"} \(total)\n"
            text += "\(name)_sum{\(labels)} \(Duration.nanoseconds(Int64(clamping: sum.connectNanoseconds)).bucketRepresentation)\n"
            text += "\(name)_count{\(labels)} \(total)\n"
        }
        return text
    }
}
