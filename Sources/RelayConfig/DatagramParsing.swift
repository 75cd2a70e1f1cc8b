import RelayCore

/// Reads `[udp]`: how UDP flows through the tunnel are timed, capped and queued
/// (docs/udp.md). Both ends read the same keys.
enum DatagramParsing {
    static let keys = ["idle_timeout", "short_idle_timeout", "max_flows", "max_flows_per_client", "queue_bytes", "queue_ms", "socket_unsent_bytes"]

    static func parse(_ r: TableReader) throws(ConfigError) -> DatagramSettings {
        try r.rejectUnknownKeys(allowed: keys)
        var s = DatagramSettings()
        if let v = try r.seconds("idle_timeout", zeroMeans: "flows end only with the tunnel") { s.idleTimeout = v }
        if let v = try r.seconds("short_idle_timeout", zeroMeans: "one-shot flows (DNS) are kept as long as others") { s.shortIdleTimeout = v }
        if let n = try r.integer("max_flows", in: 1...65536, unit: " (each flow holds three descriptors at the gateway, two at the server)") { s.maxFlows = n }
        if let n = try r.integer("max_flows_per_client", in: 1...65536) { s.maxFlowsPerClient = n }
        if let n = try r.integer("queue_bytes", in: 65537...(64 << 20), unit: " bytes (at least one largest datagram)") { s.queueBytes = n }
        if let n = try r.integer("queue_ms", in: 1...10_000, unit: " ms") { s.queueMilliseconds = n }
        if let n = try r.integer("socket_unsent_bytes", in: 1024...(16 << 20), unit: " bytes") { s.socketUnsentBytes = n }
        if s.shortIdleTimeout > s.idleTimeout, s.idleTimeout > 0 {
            throw r.error("short_idle_timeout", "short_idle_timeout (\(s.shortIdleTimeout) s) is longer than idle_timeout (\(s.idleTimeout) s): the short one is for DNS-like flows")
        }
        return s
    }
}

extension RelayConfigFile {
    /// What `check` says about UDP: which listener carries the LAN's datagrams, with what
    /// bounds, and that block_quic is moot once QUIC is carried.
    public func udpSummary() -> [String] {
        let carriers = settings.listeners.filter(\.carriesUDP)
        guard !carriers.isEmpty else { return [] }
        let u = settings.udp
        var lines = carriers.map { l in
            "udp: LAN datagrams intercepted on port \(l.address.port) (TPROXY) go through the tunnel to \(l.tunnel?.via?.description ?? "?"), one tunnel connection per flow; idle \(Int(u.idleTimeout)) s (DNS-like \(Int(u.shortIdleTimeout)) s), at most \(u.maxFlows) flows (\(u.maxFlowsPerClient) per LAN client), each queue \(u.queueBytes) bytes / \(u.queueMilliseconds) ms"
        }
        if interception.blockQUIC {
            lines.append("udp: block_quic is not needed with udp = true: QUIC (UDP 443) is carried and aggregated like the rest of UDP, so no rejection rule is emitted; remove block_quic")
        }
        return lines
    }
}
