#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import MPTCPSocket

@Suite struct SocketAddressTests {
    @Test func parsesIPv4() throws {
        let a = try SocketAddress(parsing: "10.1.0.2:5201")
        #expect(a.family == 2)
        #expect(a.host == "10.1.0.2")
        #expect(a.port == 5201)
        #expect(a.description == "10.1.0.2:5201")
    }

    @Test func parsesBracketedIPv6() throws {
        let a = try SocketAddress(parsing: "[::1]:443")
        #expect(a.family == 10)
        #expect(a.host == "::1")
        #expect(a.port == 443)
        #expect(a.description == "[::1]:443")
        #expect(try SocketAddress(parsing: "[fd00:1::2]:80").host == "fd00:1::2")
    }

    @Test func wildcardForms() throws {
        #expect(try SocketAddress(parsing: "*:80").isWildcard)
        #expect(try SocketAddress(parsing: ":80").isWildcard)
        #expect(try SocketAddress(parsing: "0.0.0.0:80").isWildcard)
        #expect(try !SocketAddress(parsing: "127.0.0.1:80").isWildcard)
    }

    @Test(arguments: [
        ("10.0.0.1", SocketAddress.ParseError.missingPort("10.0.0.1")),
        ("10.0.0.1:", .missingPort("10.0.0.1:")),
        ("10.0.0.1:70000", .badPort("10.0.0.1:70000")),
        ("10.0.0.1:http", .badPort("10.0.0.1:http")),
        ("10.0.0.300:80", .badHost("10.0.0.300:80")),
        ("example.com:80", .badHost("example.com:80")),
        ("[::1:80", .badHost("[::1:80")),
        ("[::1]80", .missingPort("[::1]80")),
    ])
    func rejectsBadInput(text: String, expected: SocketAddress.ParseError) {
        #expect(throws: expected) { try SocketAddress(parsing: text) }
    }

    @Test func unbracketedIPv6IsExplained() {
        do {
            _ = try SocketAddress(parsing: "::1:443")
            Issue.record("accepted an unbracketed IPv6 address")
        } catch {
            #expect(error.description.contains("brackets"))
        }
    }

    @Test func mappedIPv4ComesBackAsIPv4() throws {
        let v6 = try SocketAddress(parsing: "[::ffff:192.0.2.7]:99")
        var storage = sockaddr_storage()
        v6.write(to: &storage)
        let back = withUnsafePointer(to: &storage) { SocketAddress(storage: UnsafeRawPointer($0)) }
        #expect(back == (try SocketAddress(parsing: "192.0.2.7:99")))
    }
}
