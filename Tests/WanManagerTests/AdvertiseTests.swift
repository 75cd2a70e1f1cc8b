import Foundation
import Netlink
import RelayConfig
import Testing
import WanManager

/// `[server] advertise`: parsing, and the reconciler's signal endpoints.
@Suite("[server] advertise")
struct AdvertiseTests {
    static let server = "[[listener]]\nlisten = \"0.0.0.0:4000\"\nmode = \"server\"\nbackend = \"127.0.0.1:80\"\n"

    func parse(_ text: String, listener: String = server) throws -> RelayConfigFile {
        try RelayConfigFile.parse(text: listener + text, origin: "srv.toml")
    }

    func error(_ text: String, listener: String = server) -> String? {
        do { _ = try parse(text, listener: listener); return nil } catch { return "\(error)" }
    }

    @Test func parsesAddressesAndPorts() throws {
        let c = try parse("""
            [server]
            advertise = ["203.0.113.11", "203.0.113.12:4001", "[2001:db8::11]:4002", "2001:db8::12"]
            """, listener: Self.server.replacingOccurrences(of: "0.0.0.0:4000", with: "[::]:4000"))
        #expect(c.wan.advertise == [
            AdvertisedAddress(address: ip("203.0.113.11")),
            AdvertisedAddress(address: ip("203.0.113.12"), port: 4001),
            AdvertisedAddress(address: ip("2001:db8::11"), port: 4002),
            AdvertisedAddress(address: ip("2001:db8::12")),
        ])
        #expect(c.wan.advertises && c.wan.wans.isEmpty)
        // A server accepts the kernel's most joins.
        #expect(c.wan.limits.subflows == 8)
        #expect(try parse("").wan.advertise.isEmpty)
    }

    @Test func badEntriesNameTheirLine() {
        let cases: [(String, String)] = [
            ("[server]\nadvertise = [\"203.0.113.11\",\n  \"not-an-address\"]", "srv.toml:7: advertise: \"not-an-address\" is not an IP address"),
            ("[server]\nadvertise = [\"203.0.113.11:0\"]", "srv.toml:6: advertise: \"203.0.113.11:0\" has a bad port"),
            ("[server]\nadvertise = [\"203.0.113.11:70000\"]", "has a bad port"),
            ("[server]\nadvertise = [\"0.0.0.0\"]", "wildcard, loopback or multicast"),
            ("[server]\nadvertise = [\"127.0.0.1\"]", "wildcard, loopback or multicast"),
            ("[server]\nadvertise = [\"[::1]:4001\"]", "wildcard, loopback or multicast"),
            ("[server]\nadvertise = [\"[2001:db8::1:4001\"]", "no closing ']'"),
            ("[server]\nadvertise = [\"203.0.113.11\", \"203.0.113.11:4001\"]", "listed twice"),
            ("[server]\nadvertise = \"203.0.113.11\"", "srv.toml:6: 'advertise' in [server] must be an array of strings"),
            ("[server]\nadvertise = [1]", "must be a string in quotes"),
            ("[server]\nadvertize = [\"203.0.113.11\"]", "srv.toml:6: unknown key 'advertize' in [server] (did you mean 'advertise'?)"),
        ]
        for (text, want) in cases {
            let got = error(text) ?? "no error"
            #expect(got.contains(want), "\(text)\n-> \(got)")
        }
        #expect(error("", listener: "server = 1\n" + Self.server)?.contains("'server' must be a table") == true)
        let nine = (1...9).map { "\"203.0.113.\($0)\"" }.joined(separator: ", ")
        #expect(error("[server]\nadvertise = [\(nine)]")?.contains("at most 8") == true)
    }

    @Test func needsAServerListenerThatAcceptsTheJoins() {
        let forward = "[[listener]]\nlisten = \"127.0.0.1:8081\"\nmode = \"forward\"\nupstream = \"127.0.0.1:80\"\n"
        #expect(error("[server]\nadvertise = [\"203.0.113.11\"]", listener: forward)?.contains("is for an aggregation server") == true)
        // A listener on one address: a port-less advertised address would get joins nobody accepts.
        let vip = "[[listener]]\nlisten = \"198.51.100.1:4000\"\nmode = \"server\"\nbackend = \"127.0.0.1:80\"\n"
        let e = error("[server]\nadvertise = [\"203.0.113.11\"]", listener: vip) ?? ""
        #expect(e.contains("srv.toml:6:") && e.contains("no server listener accepts on 203.0.113.11"), "\(e)")
        #expect(error("[server]\nadvertise = [\"203.0.113.11:4001\"]", listener: vip) == nil)
        #expect(error("[server]\nadvertise = [\"198.51.100.1\"]", listener: vip) == nil)
        // [::] accepts IPv4 too.
        let any6 = "[[listener]]\nlisten = \"[::]:4000\"\nmode = \"server\"\nbackend = \"127.0.0.1:80\"\n"
        #expect(error("[server]\nadvertise = [\"203.0.113.11\"]", listener: any6) == nil)
    }

    @Test func checkSaysWhatTheBalancerMustRoute() throws {
        let c = try parse("[server]\nadvertise = [\"203.0.113.11\", \"203.0.113.12:4001\"]")
        let text = c.fleetInstructions().joined(separator: "\n")
        #expect(text.contains("0.0.0.0:4000 (server to 127.0.0.1:80) -> any server"), "\(text)")
        #expect(text.contains("203.0.113.11 port(s) 4000 -> this server"), "\(text)")
        #expect(text.contains("203.0.113.12 port 4001 -> this server"), "\(text)")
        #expect(text.contains("allow_join_initial_addr_port = 0"), "\(text)")
        #expect(try parse("").fleetInstructions().isEmpty)
    }

    // MARK: reconciler

    static let plan = WanPlan(wans: [], advertise: [AdvertisedAddress(address: ip("203.0.113.11")),
                                                    AdvertisedAddress(address: ip("203.0.113.12"), port: 4001)])

    @Test func addsOwnedSignalEndpointsAndKeepsThem() {
        var k = FakeKernel(view: KernelView(limits: PathLimits(subflows: 2, addAddrAccepted: 0)))
        k.view.endpoints = [Endpoint(id: 1, address: ip("10.10.1.2"), flags: .subflow, ifindex: 0)]   // an operator's
        let first = WanReconciler.reconcile(Self.plan, k.view, owned: [], limits: Self.plan.limits)
        k.apply(first.actions)
        let signal = k.view.endpoints.filter { $0.flags == .signal }
        #expect(signal.map(\.address) == [ip("203.0.113.11"), ip("203.0.113.12")])
        #expect(signal.map(\.port) == [0, 4001])
        #expect(signal.allSatisfy { $0.ifindex == 0 && $0.id >= WanPlan.firstEndpointID })
        #expect(first.owned == Set(signal.map { OwnedEndpoint(id: $0.id, address: $0.address) }), "signal endpoints are recorded as ours")
        #expect(k.view.limits == PathLimits(subflows: 8, addAddrAccepted: 1))
        // Steady state: nothing to do, the signal endpoints are not stale.
        let again = WanReconciler.reconcile(Self.plan, k.view, owned: first.owned, limits: Self.plan.limits)
        #expect(again.actions.isEmpty, "\(again.actions)")
        #expect(again.owned == first.owned)
        // Stop (the empty plan of teardown): ours go, the operator's stays.
        let stop = WanReconciler.reconcile(WanPlan(wans: []), k.view, owned: again.owned)
        k.apply(stop.actions)
        #expect(k.view.endpoints.map(\.id) == [1])
    }

    @Test func aChangedPortReplacesTheEndpoint() {
        var k = FakeKernel(view: KernelView())
        let r1 = WanReconciler.reconcile(Self.plan, k.view, owned: [])
        k.apply(r1.actions)
        var moved = Self.plan
        moved.advertise[1].port = 4002
        let r2 = WanReconciler.reconcile(moved, k.view, owned: r1.owned)
        k.apply(r2.actions)
        #expect(k.view.endpoints.first { $0.address == ip("203.0.113.12") }?.port == 4002)
        #expect(k.view.endpoints.count == 2)
        // Dropped from the config (SIGHUP): its endpoint goes.
        let r3 = WanReconciler.reconcile(WanPlan(wans: [], advertise: [moved.advertise[0]]), k.view, owned: r2.owned)
        k.apply(r3.actions)
        #expect(k.view.endpoints.map(\.address) == [ip("203.0.113.11")])
    }

    @Test func anOperatorsEndpointOnTheAddressIsLeftAlone() {
        var k = FakeKernel(view: KernelView())
        k.view.endpoints = [Endpoint(id: 7, address: ip("203.0.113.11"), flags: .signal, ifindex: 0)]
        let r = WanReconciler.reconcile(Self.plan, k.view, owned: [])
        #expect(!r.actions.contains { if case .deleteEndpoint = $0 { return true }; return false })
        #expect(r.notes.contains { $0.contains("203.0.113.11 is already endpoint id 7, not created by mptcp-relay") }, "\(r.notes)")
        #expect(!r.owned.contains { $0.id == 7 })
    }

    @Test func wansAndAdvertiseTogether() {
        var k = FakeKernel.twoWans()
        let plan = WanPlan(wans: [WanSpec(interface: "wan1", table: 1001), WanSpec(interface: "wan2", table: 1002)],
                           advertise: [AdvertisedAddress(address: ip("203.0.113.11"))])
        let r = WanReconciler.reconcile(plan, k.view, owned: [])
        k.apply(r.actions)
        #expect(k.view.endpoints.count == 5)
        #expect(k.view.endpoints.filter { $0.flags == .signal }.map(\.address) == [ip("203.0.113.11")])
        #expect(r.owned.count == 5)
    }
}
