#if canImport(Glibc)
import Glibc
#endif
import Foundation
import MPTCPSocket

/// A minimal blocking HTTP/1.1 GET for `mptcp-relay status` and the tests: one request per
/// connection (Connection: close), loopback or a LAN address, no TLS.
public enum AdminClient {
    public struct Response: Sendable {
        public var status: Int
        public var body: Data
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static func get(_ address: SocketAddress, path: String, token: String? = nil, timeout: Int = 5) throws(Failure) -> Response {
        let fd = socket(Int32(address.family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var storage = sockaddr_storage()
        let length = address.write(to: &storage)
        let rc = withUnsafePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        guard rc == 0 else {
            throw Failure(description: "cannot connect to the admin listener at \(address): \(String(cString: strerror(errno))) (is the relay running with --admin \(address) or [admin] listen?)")
        }
        var request = "GET \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\nAccept: */*\r\n"
        if let token { request += "Authorization: Bearer \(token)\r\n" }
        request += "\r\n"
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == bytes.count else {
            throw Failure(description: "sending the request to \(address) failed: \(String(cString: strerror(errno)))")
        }
        var data = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Failure(description: "reading the answer from \(address): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            data.append(contentsOf: chunk[0..<n])
            if let response = complete(data) { return response }
        }
        guard let response = complete(data, atEOF: true) else {
            throw Failure(description: "the admin listener at \(address) sent no complete HTTP answer")
        }
        return response
    }

    /// A whole response once its headers and Content-Length bytes are in (or at EOF).
    private static func complete(_ data: Data, atEOF: Bool = false) -> Response? {
        guard let end = data.range(of: Data("\r\n\r\n".utf8)) else { return nil }
        let head = String(decoding: data[..<end.lowerBound], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let parts = lines.first?.split(separator: " ") ?? []
        guard parts.count >= 2, let status = Int(parts[1]) else { return nil }
        let body = data[end.upperBound...]
        let length = lines.dropFirst().compactMap { line -> Int? in
            let kv = line.split(separator: ":", maxSplits: 1)
            guard kv.count == 2, kv[0].lowercased() == "content-length" else { return nil }
            return Int(kv[1].trimmingCharacters(in: .whitespaces))
        }.first
        if let length {
            guard body.count >= length else { return nil }
            return Response(status: status, body: Data(body.prefix(length)))
        }
        return atEOF ? Response(status: status, body: Data(body)) : nil
    }
}
