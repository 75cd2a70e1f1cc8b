#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// An IPv4 or IPv6 socket address, stored as the kernel's own structure so it can be
/// handed to `connect(2)` or an io_uring SQE without conversion.
public enum SocketAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
    case v4(sockaddr_in)
    case v6(sockaddr_in6)

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case missingPort(String)
        case badPort(String)
        case badHost(String)

        public var description: String {
            switch self {
            case .missingPort(let s): return "'\(s)' has no port: write HOST:PORT, or [IPv6]:PORT"
            case .badPort(let s): return "'\(s)' has a bad port: use a number from 0 to 65535"
            case .badHost(let s): return "'\(s)' is not an IPv4 or IPv6 literal (host names are not resolved)"
            }
        }
    }

    /// Parses `1.2.3.4:80`, `[::1]:443` or `*:80` / `:80` (IPv6 wildcard, dual-stack).
    public init(parsing text: String) throws(ParseError) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw .badHost(text) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw .missingPort(text) }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .missingPort(text) }
            host = text[..<colon]
            if host.contains(":") { throw .badHost(text + " (put IPv6 addresses in brackets: [::1]:443)") }
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText) else {
            throw portText.isEmpty ? .missingPort(text) : .badPort(text)
        }
        guard let address = SocketAddress(host: String(host), port: port) else { throw .badHost(text) }
        self = address
    }

    /// Builds an address from a numeric host literal; `""` and `*` mean the IPv6 wildcard.
    public init?(host: String, port: UInt16) {
        let literal = (host.isEmpty || host == "*") ? "::" : host
        var in4 = in_addr()
        if inet_pton(AF_INET, literal, &in4) == 1 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr = in4
            self = .v4(sa)
            return
        }
        var in6 = in6_addr()
        if inet_pton(AF_INET6, literal, &in6) == 1 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            sa.sin6_addr = in6
            self = .v6(sa)
            return
        }
        return nil
    }

    /// Reads an address the kernel filled in; nil for families other than IPv4/IPv6.
    public init?(storage: UnsafeRawPointer) {
        switch Int32(storage.load(as: sockaddr.self).sa_family) {
        case AF_INET: self = .v4(storage.loadUnaligned(as: sockaddr_in.self))
        case AF_INET6:
            let sa6 = storage.loadUnaligned(as: sockaddr_in6.self)
            // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d; report it as IPv4.
            let w = sa6.sin6_addr.__in6_u.__u6_addr32
            if w.0 == 0 && w.1 == 0 && w.2 == UInt32(0x0000_ffff).bigEndian {
                var sa = sockaddr_in()
                sa.sin_family = sa_family_t(AF_INET)
                sa.sin_port = sa6.sin6_port
                sa.sin_addr.s_addr = w.3
                self = .v4(sa)
            } else {
                self = .v6(sa6)
            }
        default: return nil
        }
    }

    public var family: Int32 {
        switch self {
        case .v4: return AF_INET
        case .v6: return AF_INET6
        }
    }

    public var port: UInt16 {
        switch self {
        case .v4(let sa): return UInt16(bigEndian: sa.sin_port)
        case .v6(let sa): return UInt16(bigEndian: sa.sin6_port)
        }
    }

    /// The host part as text, without brackets.
    public var host: String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(INET6_ADDRSTRLEN)) { buffer in
            String(decoding: UnsafeRawBufferPointer(start: buffer.baseAddress, count: writeHost(to: buffer.baseAddress!)), as: UTF8.self)
        }
    }

    public var description: String {
        withText { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with the address as `description` has it (`1.2.3.4:80`, `[::1]:443`),
    /// written on the stack: a log line copies it without a String being made.
    public func withText<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        // "[" host "]" ":" and at most 5 digits.
        try withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(INET6_ADDRSTRLEN) + 8) { buffer in
            let start = buffer.baseAddress!
            var n = 0
            if case .v6 = self { start[0] = 0x5B; n = 1 }  // [
            n += writeHost(to: start + n)
            if case .v6 = self { start[n] = 0x5D; n += 1 }  // ]
            start[n] = 0x3A  // :
            n += 1
            var divisor = 10_000, value = Int(port), leading = true
            while divisor > 0 {
                let digit = value / divisor
                if digit > 0 || !leading || divisor == 1 {
                    start[n] = CChar(0x30 + digit)
                    n += 1
                    leading = false
                }
                value %= divisor
                divisor /= 10
            }
            return try body(UnsafeRawBufferPointer(start: start, count: n))
        }
    }

    /// inet_ntop into `buffer` (INET6_ADDRSTRLEN bytes at least); the length written.
    private func writeHost(to buffer: UnsafeMutablePointer<CChar>) -> Int {
        switch self {
        case .v4(var sa): inet_ntop(AF_INET, &sa.sin_addr, buffer, socklen_t(INET6_ADDRSTRLEN))
        case .v6(var sa): inet_ntop(AF_INET6, &sa.sin6_addr, buffer, socklen_t(INET6_ADDRSTRLEN))
        }
        return strlen(buffer)
    }

    /// The same host with port 0: a key per host (the loop guard's own addresses, the UDP
    /// engine's per-client caps).
    public var withoutPort: SocketAddress {
        switch self {
        case .v4(var sa): sa.sin_port = 0; return .v4(sa)
        case .v6(var sa): sa.sin6_port = 0; sa.sin6_flowinfo = 0; return .v6(sa)
        }
    }

    /// True for 0.0.0.0 and ::.
    public var isWildcard: Bool {
        switch self {
        case .v4(let sa): return sa.sin_addr.s_addr == 0
        case .v6(let sa):
            let w = sa.sin6_addr.__in6_u.__u6_addr32
            return w.0 == 0 && w.1 == 0 && w.2 == 0 && w.3 == 0
        }
    }

    public var length: socklen_t {
        switch self {
        case .v4: return socklen_t(MemoryLayout<sockaddr_in>.size)
        case .v6: return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    /// Calls `body` with a `sockaddr` pointer valid only for the duration of the call.
    public func withSockaddr<R, E: Error>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws(E) -> R) throws(E) -> R {
        var storage = sockaddr_storage()
        let length = write(to: &storage)
        return try withUnsafePointer(to: &storage) { (p) throws(E) -> R in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sa) throws(E) -> R in try body(sa, length) }
        }
    }

    /// Copies the address into caller-owned storage (stable memory for asynchronous operations).
    @discardableResult
    public func write(to storage: UnsafeMutablePointer<sockaddr_storage>) -> socklen_t {
        UnsafeMutableRawPointer(storage).initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<sockaddr_storage>.size)
        switch self {
        case .v4(let sa): UnsafeMutableRawPointer(storage).storeBytes(of: sa, as: sockaddr_in.self)
        case .v6(let sa): UnsafeMutableRawPointer(storage).storeBytes(of: sa, as: sockaddr_in6.self)
        }
        return length
    }

    /// Family, port and address bytes (what `description` shows; not the IPv6 flow label or
    /// scope): compared as bytes, never as text, since the loop guard and the upstream list
    /// compare addresses per connection.
    public static func == (a: SocketAddress, b: SocketAddress) -> Bool {
        switch (a, b) {
        case (.v4(let x), .v4(let y)):
            return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr
        case (.v6(let x), .v6(let y)):
            return x.sin6_port == y.sin6_port && x.sin6_addr.__in6_u.__u6_addr32 == y.sin6_addr.__in6_u.__u6_addr32
        default:
            return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(family)
        hasher.combine(port)
        switch self {
        case .v4(let sa): hasher.combine(sa.sin_addr.s_addr)
        case .v6(let sa):
            let w = sa.sin6_addr.__in6_u.__u6_addr32
            hasher.combine(w.0); hasher.combine(w.1); hasher.combine(w.2); hasher.combine(w.3)
        }
    }
}
