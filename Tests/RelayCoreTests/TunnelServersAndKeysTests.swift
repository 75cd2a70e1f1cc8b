import MPTCPSocket
import Testing
import TunnelProtocol
@testable import RelayCore

/// Issue 26 without a kernel: which server a gateway picks, and a tunnel server's per-key
/// accounts (limits, revocation, label cap).
@Suite("Tunnel servers and keys")
struct TunnelServersAndKeysTests {
    func address(_ text: String) -> SocketAddress { try! SocketAddress(parsing: text) }
    var servers: [SocketAddress] { ["198.51.100.4:4443", "203.0.113.9:4443", "192.0.2.7:4443"].map(address) }
    var hosts: [SocketAddress] { (1...200).map { address("198.18.\($0 / 250).\($0 % 250 + 1):443") } }

    @Test func aHostKeepsItsServerAndTheSpreadUsesEveryServer() {
        var count = [0, 0, 0]
        for h in hosts {
            let i = TunnelServerChoice.pick(servers, destination: h, tried: 0, out: [])!
            count[i] += 1
            // Another port of the same host: the same server.
            var other = h
            if case .v4(var sa) = h { sa.sin_port = UInt16(8080).bigEndian; other = .v4(sa) }
            #expect(TunnelServerChoice.pick(servers, destination: other, tried: 0, out: []) == i)
        }
        #expect(count.allSatisfy { $0 > 40 }, "spread of 200 hosts over 3 servers: \(count)")
    }

    @Test func aServerOutMovesOnlyItsHostsAndTheyComeBack() {
        for h in hosts {
            let first = TunnelServerChoice.pick(servers, destination: h, tried: 0, out: [])!
            let without = TunnelServerChoice.pick(servers, destination: h, tried: 0, out: [servers[1]])!
            #expect(without != 1)
            if first != 1 { #expect(without == first, "a host of another server moved") }
            // Retried after a refusal: never the same server twice, nil once all were tried.
            let second = TunnelServerChoice.pick(servers, destination: h, tried: 1 << UInt32(first), out: [])!
            #expect(second != first)
            #expect(TunnelServerChoice.pick(servers, destination: h, tried: 0b111, out: []) == nil)
        }
        // Every server out: still one (fail open).
        #expect(TunnelServerChoice.pick(servers, destination: hosts[0], tried: 0, out: Set(servers)) != nil)
    }

    func entry(_ name: String, _ seed: UInt8) -> TunnelKeyring.Entry {
        TunnelKeyring.Entry(name: KeyName(name)!, key: try! TunnelKey(bytes: Array(repeating: seed, count: 32)))
    }

    @Test func aKeyStopsAtItsOwnLimitAndRemovedKeysAreRefusedAndRevoked() throws {
        let accounts = TunnelKeyAccounts()
        let a = entry("a", 1), b = entry("b", 2)
        _ = accounts.install([try TunnelKeyring([a, b])])
        let slots = (0..<3).map { _ in accounts.acquire(a, limit: 3) }
        #expect(slots.allSatisfy { (try? $0.get()) != nil })
        #expect(accounts.acquire(a, limit: 3) == .failure(Rejection(.resourceExceeded, .keyAtLimit(a.name, limit: 3))))
        #expect((try? accounts.acquire(b, limit: 3).get()) != nil, "b is limited by a's connections")
        accounts.release(try slots[0].get(), bytesUp: 10, bytesDown: 20)
        #expect((try? accounts.acquire(a, limit: 3).get()) != nil, "a closed one, so it may open one")
        // a is removed: refused from now on, its open connections are the ones to revoke.
        let revoked = accounts.install([try TunnelKeyring([b])])
        #expect(revoked == [try slots[1].get()])
        #expect(accounts.acquire(a, limit: nil) == .failure(Rejection(.notAuthorized, .unknownKeyName(a.name))))
        let reports = accounts.reports()
        #expect(reports.first { $0.label == "a" }?.open == 3)
        #expect(reports.first { $0.label == "a" }?.refused == 1)
        #expect(reports.first { $0.label == "a" }?.bytesDown == 20)
        #expect(reports.first { $0.label == "b" }?.open == 1)
    }

    @Test func metricLabelsStopAtTheCap() throws {
        let accounts = TunnelKeyAccounts()
        let entries = (0..<(TunnelKeyAccounts.labelCap + 10)).map { i in
            TunnelKeyring.Entry(name: KeyName("k\(i)")!, key: try! TunnelKey(bytes: [UInt8(i & 0xff), UInt8(i >> 8)] + Array(repeating: 7, count: 30)))
        }
        _ = accounts.install([try TunnelKeyring(entries)])
        for e in entries { _ = accounts.acquire(e, limit: nil) }
        let labels = accounts.reports().map(\.label)
        #expect(labels.count == TunnelKeyAccounts.labelCap + 1)
        #expect(accounts.reports().first { $0.label == TunnelKeyAccounts.otherLabel }?.open == 10)
    }
}
