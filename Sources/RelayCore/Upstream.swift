#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket

/// Where a forward or server listener sends its connections: an address, or a host name
/// that the control side resolves (never the event loop) and re-resolves every 30 s.
/// When a name has several addresses, a connection tries them in the resolver's order.
public struct Upstream: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let port: UInt16
    /// The address when `host` is an IP literal.
    public let literal: SocketAddress?

    public init(_ address: SocketAddress) {
        self.init(host: address.host, port: address.port, literal: address)
    }

    private init(host: String, port: UInt16, literal: SocketAddress?) {
        self.host = host
        self.port = port
        self.literal = literal
    }

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case address(SocketAddress.ParseError)
        case badName(String)

        public var description: String {
            switch self {
            case .address(let e): return "\(e)"
            case .badName(let s): return "'\(s)' is neither an IP address nor a host name (letters, digits, '-' and '.'): write HOST:PORT or [IPv6]:PORT"
            }
        }
    }

    /// `HOST:PORT`, `[IPv6]:PORT` or `NAME:PORT`.
    public init(parsing text: String) throws(ParseError) {
        do {
            self.init(try SocketAddress(parsing: text))
            return
        } catch {
            guard case .badHost = error, let colon = text.lastIndex(of: ":"), !text.hasPrefix("[") else { throw .address(error) }
            let name = String(text[..<colon])
            guard text[text.index(after: colon)...].count <= 5, let port = UInt16(text[text.index(after: colon)...]), port > 0 else {
                throw .address(.badPort(text))
            }
            guard Self.isHostName(name) else {
                // Two or more colons: an IPv6 literal without brackets, which SocketAddress explains.
                throw name.contains(":") ? .address(error) : .badName(text)
            }
            self.init(host: name, port: port, literal: nil)
        }
    }

    /// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
    static func isHostName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        return labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7a) || $0 == 0x2d }
        } && !labels.allSatisfy { $0.allSatisfy(\.isNumber) }
    }

    public var description: String {
        literal?.description ?? "\(host):\(port)"
    }

    /// The host name, when there is one to resolve.
    public var name: String? { literal == nil ? host : nil }

    /// Every address the system resolver gives for the name, in its order (RFC 6724), or
    /// why none. Blocking: call it off the event loop.
    public func resolve() -> Result<[SocketAddress], ResolveError> {
        if let literal { return .success([literal]) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0 else { return .failure(ResolveError(text: String(cString: gai_strerror(rc)))) }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var entry = list
        while let e = entry {
            if let a = e.pointee.ai_addr.flatMap({ SocketAddress(storage: UnsafeRawPointer($0)) }), !addresses.contains(a) {
                addresses.append(a)
            }
            entry = e.pointee.ai_next
        }
        return addresses.isEmpty ? .failure(ResolveError(text: "no IPv4 or IPv6 address")) : .success(addresses)
    }

    public struct ResolveError: Error, CustomStringConvertible {
        public let text: String
        public var description: String { text }
    }
}
