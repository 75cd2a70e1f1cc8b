import CoreMetrics
import Prometheus
import RelayCore
import Synchronization

/// The Prometheus side. The workers count each connection's events in counters of their own
/// (ListenerCounters), brought in and summed at each scrape (AdminMetrics+Listeners), as are
/// the values that are state rather than events (open connections, pipes, WAN subflows).
/// swift-metrics is bootstrapped with swift-prometheus for the rarer events (refused tunnel
/// clients, snapshot cost), which land in this registry as they happen.
final class AdminMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let lastCounts = Mutex<[String: UInt64]>([:])

    /// Once per process: swift-metrics takes one backend.
    func bootstrap() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = ListenerCounters.connectBounds.map { .nanoseconds($0) }
        MetricsSystem.bootstrap(factory)
    }

    /// Updates the scrape-time values and renders the text format.
    func render(_ doc: StatusDocument, listeners: [ListenerCounters] = []) -> String {
        let perListener = Self.sum(listeners)
        advanceListenerCounters(perListener)
        registry.makeGauge(name: "mptcp_relay_open_connections", help: "Connections open now (all phases).").set(Int64(doc.totals.openConnections))
        registry.makeGauge(name: "mptcp_relay_pipes_in_use", help: "Splice pipes holding bytes in flight.").set(Int64(doc.totals.pipesInUse))
        registry.makeGauge(name: "mptcp_relay_workers_answering", help: "Workers that answered the last snapshot in time.").set(Int64(doc.workersAnswered))
        advance("mptcp_relay_accept_pauses_total", [], to: doc.totals.acceptPauses, help: "Times accepting paused for want of descriptors.")
        if let u = doc.udp {
            registry.makeGauge(name: "mptcp_relay_udp_flows", help: "UDP flows through the tunnel open now.").set(Int64(u.openFlows))
            advance("mptcp_relay_udp_flows_opened_total", [], to: u.flowsOpened, help: "UDP flows opened since start.")
            for (direction, datagrams, bytes) in [("up", u.datagramsUp, u.bytesUp), ("down", u.datagramsDown, u.bytesDown)] {
                advance("mptcp_relay_udp_datagrams_total", [("direction", direction)], to: datagrams,
                        help: "Datagrams carried (up: toward the tunnel's far end).")
                advance("mptcp_relay_udp_bytes_total", [("direction", direction)], to: bytes,
                        help: "UDP payload bytes carried (up: toward the tunnel's far end).")
            }
            for (reason, count) in u.drops.sorted(by: { $0.key < $1.key }) {
                advance("mptcp_relay_udp_drops_total", [("reason", reason)], to: count,
                        help: "Datagrams dropped, by reason (age: waited longer than queue_ms; queue_full; flow_limit; client_limit; tunnel_down; send_failed; not_intercepted).")
            }
        }
        for wan in doc.wans {
            registry.makeGauge(name: "mptcp_relay_wan_subflows", labels: [("interface", wan.interface)], help: "Subflows of open connections over this interface.")
                .set(Int64(wan.subflows))
            advance("mptcp_relay_wan_bytes_total", [("interface", wan.interface), ("direction", "sent")], to: wan.bytesSent,
                    help: "Bytes over this interface, summed from the subflows of open connections.")
            advance("mptcp_relay_wan_bytes_total", [("interface", wan.interface), ("direction", "received")], to: wan.bytesReceived,
                    help: "Bytes over this interface, summed from the subflows of open connections.")
        }
        for u in doc.uplinks ?? [] {
            let labels = [("interface", u.interface)]
            registry.makeGauge(name: "mptcp_relay_wan_in_service", labels: labels,
                               help: "1 while the WAN takes new subflows and connections: link up and health probes answering.")
                .set(Int64(u.inService ? 1 : 0))
            advance("mptcp_relay_wan_probe_rounds_total", labels + [("result", "answered")], to: u.rounds - u.failedRounds,
                    help: "Health probe rounds of this WAN, by result.")
            advance("mptcp_relay_wan_probe_rounds_total", labels + [("result", "failed")], to: u.failedRounds,
                    help: "Health probe rounds of this WAN, by result.")
            advance("mptcp_relay_wan_service_changes_total", labels, to: u.transitions,
                    help: "Times probes took this WAN out of service or put it back.")
            advance("mptcp_relay_wan_flows_released_total", labels, to: u.flowsMoved,
                    help: "NATed routed flows whose conntrack entry was deleted when this WAN went out of service, so they restart on a WAN in service.")
        }
        for r in doc.routing ?? [] {
            let labels = [("family", r.family)]
            registry.makeGauge(name: "mptcp_relay_routing_detour", labels: labels,
                               help: "1 while routed traffic of this family avoids the main table's default WAN (out of service).")
                .set(Int64(r.via == nil ? 0 : 1))
            advance("mptcp_relay_routing_changes_total", labels, to: r.changes,
                    help: "Times routed traffic of this family changed the WAN it leaves by.")
        }
        for k in doc.keys ?? [] {
            // One series per key label: at most TunnelKeyAccounts.labelCap (256) keys, then "other".
            let labels = [("key", k.key)]
            registry.makeGauge(name: "mptcp_relay_tunnel_key_open_connections", labels: labels,
                               help: "Tunnel server: connections open now under this gateway key.")
                .set(Int64(k.open))
            advance("mptcp_relay_tunnel_key_connections_total", labels, to: k.accepted,
                    help: "Tunnel server: headers accepted under this gateway key (pings excluded).")
            advance("mptcp_relay_tunnel_key_refusals_total", labels, to: k.refused,
                    help: "Tunnel server: headers naming this key refused (bad MAC, replay, clock, destination, the key's connection limit).")
            advance("mptcp_relay_tunnel_key_bytes_total", labels + [("direction", "up")], to: k.bytesUp,
                    help: "Tunnel server: bytes relayed under this gateway key, by connections that closed.")
            advance("mptcp_relay_tunnel_key_bytes_total", labels + [("direction", "down")], to: k.bytesDown,
                    help: "Tunnel server: bytes relayed under this gateway key, by connections that closed.")
        }
        for s in doc.servers ?? [] {
            let labels = [("server", s.address)]
            registry.makeGauge(name: "mptcp_relay_tunnel_server_in_service", labels: labels,
                               help: "Tunnel gateway: 1 while this aggregation server answers its health pings.")
                .set(Int64(s.inService ? 1 : 0))
            registry.makeGauge(name: "mptcp_relay_tunnel_server_connections", labels: labels,
                               help: "Tunnel gateway: connections open through this aggregation server.")
                .set(Int64(s.connections))
            advance("mptcp_relay_tunnel_server_pings_total", labels + [("result", "answered")], to: s.rounds - s.failedRounds,
                    help: "Tunnel gateway: health pings of this server, by result.")
            advance("mptcp_relay_tunnel_server_pings_total", labels + [("result", "failed")], to: s.failedRounds,
                    help: "Tunnel gateway: health pings of this server, by result.")
        }
        return registry.emitToString() + Self.connectHistogram(perListener)
    }

    /// A Prometheus counter only goes up by increments: add what a cumulative source gained.
    func advance(_ name: String, _ labels: [(String, String)], to value: UInt64, help: String) {
        let key = name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let delta: UInt64 = lastCounts.withLock { last in
            let before = last[key] ?? 0
            last[key] = max(before, value)
            return value > before ? value - before : 0
        }
        let counter = labels.isEmpty ? registry.makeCounter(name: name, help: help) : registry.makeCounter(name: name, labels: labels, help: help)
        if delta > 0 { counter.increment(by: Int64(clamping: delta)) }
    }
}
