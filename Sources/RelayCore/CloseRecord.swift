#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import RelayLog
import TunnelProtocol

/// A connection's close line as numbers, addresses and enums. The worker fills it in and
/// hands it to the log's writer thread, which writes the text (LogRecord); the same
/// formatter makes the text on the worker only where a record cannot go (a refusal's reason
/// is a text; a logger that is not RelayLog's, as in tests).
struct CloseRecord: LogRecord {
    /// How the line names the connection's ends, by listener mode.
    enum Route: BitwiseCopyable {
        /// `client=... upstream=...` (forward, transparent, redirect, server).
        case upstream
        /// `tunnel key=... client=... destination=...` (the tunnel server's end).
        case tunnelServer
        /// `client=... destination=... via=...` (the gateway's end of a tunnel).
        case tunnelGateway
    }

    var worker: Int32
    var sequence: UInt64
    var route: Route
    var client: AddressBytes
    /// The address connected to: the upstream, or the tunnel server (via); none before a connect.
    var target: AddressBytes
    var destination: AddressBytes
    var key: KeyName?
    /// The MPTCP side's outcome; nil when the connection never got that far.
    var mptcp: MPTCPStatus?
    /// MPTCP was negotiated, then the connection fell back to TCP.
    var lost: Bool
    var cause: CloseCause
    var bytesUp: UInt64
    var bytesDown: UInt64
    /// From accept to close.
    var nanoseconds: Int64
    /// Subflows of the MPTCP side at the end; 0 when not read.
    var subflows: Int32

    func writeMessage(to line: inout LogLine) {
        writeMessage(to: &line, refusal: nil)
    }

    /// `closed conn=W.N <ends> <mptcp> <reason> up=B down=B ms=T [subflows=N]`.
    func writeMessage(to line: inout LogLine, refusal: String?) {
        line.append("closed conn=")
        line.append(decimal: worker)
        line.append(byte: UInt8(ascii: "."))
        line.append(decimal: sequence)
        switch route {
        case .tunnelServer:
            line.append(" tunnel ")
            if let key {
                line.append("key=")
                line.append(key.description)
                line.append(byte: UInt8(ascii: " "))
            }
            Self.append("client=", client, to: &line)
            Self.append(" destination=", destination, to: &line)
        case .tunnelGateway:
            Self.append(" client=", client, to: &line)
            Self.append(" destination=", destination, to: &line)
            Self.append(" via=", target, to: &line)
        case .upstream:
            Self.append(" client=", client, to: &line)
            Self.append(" upstream=", target, orElse: "-", to: &line)
        }
        if let mptcp {
            line.append(byte: UInt8(ascii: " "))
            line.append(lost ? "mptcp=lost (fell back to TCP after negotiating MPTCP)" : mptcp.description)
        }
        line.append(byte: UInt8(ascii: " "))
        cause.write(to: &line, refusal: refusal)
        line.append(" up=")
        line.append(decimal: bytesUp)
        line.append(" down=")
        line.append(decimal: bytesDown)
        line.append(" ms=")
        line.append(decimal: Int(Double(nanoseconds) / 1e9 * 1000))
        if subflows > 0 {
            line.append(" subflows=")
            line.append(decimal: subflows)
        }
    }

    /// `name` and the address, or `orElse` when there is none (of another family, or never set).
    private static func append(_ name: StaticString, _ address: AddressBytes, orElse: StaticString = "?", to line: inout LogLine) {
        line.append(name)
        if let address = address.address { address.withText { line.append($0) } } else { line.append(orElse) }
    }
}

/// A socket address as a record carries it: the leading 28 bytes of its sockaddr_storage, all
/// that sockaddr_in and sockaddr_in6 use (SocketAddress itself is not BitwiseCopyable: the
/// imported sockaddr_in6 holds a C union). Read back on the log thread.
struct AddressBytes: BitwiseCopyable {
    private var words: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0, 0, 0, 0)

    /// No address (family 0).
    static var none: AddressBytes { AddressBytes() }

    private init() {}

    init(_ storage: UnsafePointer<sockaddr_storage>) {
        withUnsafeMutableBytes(of: &words) { $0.copyMemory(from: UnsafeRawBufferPointer(start: storage, count: $0.count)) }
    }

    /// Nil for a family other than IPv4 and IPv6 (an address never filled in).
    var address: SocketAddress? {
        withUnsafeBytes(of: words) { SocketAddress(storage: $0.baseAddress!) }
    }
}
