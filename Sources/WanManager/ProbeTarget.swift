import Netlink

/// One thing a WAN's health probe asks for an answer from (`probe = [...]` in a `[[wan]]`).
public enum ProbeTarget: Hashable, Sendable, CustomStringConvertible {
    /// A TCP handshake: a SYN-ACK or a RST both prove the path carries traffic both ways.
    case tcp(IPAddress, port: UInt16)
    /// An ICMP (or ICMPv6) echo request.
    case icmp(IPAddress)
    /// An echo request to the WAN's own next hop (its `gateway`/`gateway6`, or the learned one).
    case gateway

    /// "ADDR:PORT" / "[ADDR6]:PORT" (TCP), "ADDR" (ICMP echo), or "gateway"; nil otherwise.
    public init?(_ text: String) {
        if text == "gateway" { self = .gateway; return }
        if let address = IPAddress(text) { self = .icmp(address); return }
        var host = Substring(text), portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let address = IPAddress(String(host)), let port = UInt16(portText), port > 0 else { return nil }
        self = .tcp(address, port: port)
    }

    public var description: String {
        switch self {
        case .tcp(let a, let port): return a.family == .v6 ? "[\(a)]:\(port)" : "\(a):\(port)"
        case .icmp(let a): return "\(a)"
        case .gateway: return "gateway"
        }
    }

    /// Why the target cannot tell anything about a WAN (an address that never leaves the
    /// host, or is not one host), or nil.
    public var problem: String? {
        switch self {
        case .tcp(let a, _), .icmp(let a): return Self.problem(a)
        case .gateway: return nil
        }
    }

    static func problem(_ a: IPAddress) -> String? {
        let b = a.bytes
        if a.family == .v4 {
            if b[0] == 127 { return "a loopback address never leaves the host" }
            if b.allSatisfy({ $0 == 0 }) { return "0.0.0.0 is not a host" }
            if (224...239).contains(b[0]) { return "a multicast address is not one host" }
            if b.allSatisfy({ $0 == 255 }) { return "the broadcast address is not one host" }
        } else {
            if b.dropLast().allSatisfy({ $0 == 0 }) && (b[15] == 1 || b[15] == 0) { return b[15] == 1 ? "::1 never leaves the host" : ":: is not a host" }
            if b[0] == 0xff { return "a multicast address is not one host" }
        }
        return nil
    }

    public var family: IPAddress.Family? {
        switch self {
        case .tcp(let a, _), .icmp(let a): return a.family
        case .gateway: return nil
        }
    }

    /// Without `probe`: TCP to two public anycast resolvers per family (port 443 passes
    /// where captive or filtered networks drop other ports), with the WAN's gateway as the
    /// fallback judge while none of them has ever answered (an isolated network).
    public static let defaults: [ProbeTarget] = [
        .tcp(IPAddress("1.1.1.1")!, port: 443), .tcp(IPAddress("8.8.8.8")!, port: 443),
        .tcp(IPAddress("2606:4700:4700::1111")!, port: 443), .tcp(IPAddress("2001:4860:4860::8888")!, port: 443),
    ]
}

/// The `[health]` table: how often WANs are probed and how many rounds decide.
public struct HealthSettings: Sendable, Equatable {
    /// Seconds from one probe round to the next.
    public var interval = 1.0
    /// Seconds a round waits for answers.
    public var timeout = 1.0
    /// Consecutive failed rounds that take a WAN out of service.
    public var downAfter = 3
    /// Consecutive answered rounds that put it back.
    public var upAfter = 2
    /// false: nothing is probed; WANs follow their link state only.
    public var enabled = true

    public init() {}

    /// Worst case from the first lost packet to the WAN being out of service: the round in
    /// flight may still be answered, then `downAfter` rounds must fail.
    public var detectionSeconds: Double { interval * Double(downAfter) + timeout }
    public var recoverySeconds: Double { interval * Double(upAfter) + timeout }
}
