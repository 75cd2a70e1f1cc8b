#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import SystemPackage
import Testing
import URing

/// Every detection path, with the kernel's answers faked: each missing feature is reported
/// with what the relay does instead.
@Suite struct KernelFeatureTests {
    func probe(mptcp: Bool = true, unknown: Set<Int32> = [], symbols: Set<String> = ["mptcp_splice_read"]) -> MPTCPFeatures.Probe {
        MPTCPFeatures.Probe(
            openSocket: { proto in proto == 262 && !mptcp ? .protocolNotSupported : nil },
            getOption: { _, _, name in unknown.contains(name) ? .protocolNotAvailable : (name == 4 ? .invalidArgument : nil) },
            hasSymbol: { symbols.contains($0) })
    }

    @Test func aCurrentKernelHasEverything() {
        let f = MPTCPFeatures.detect(probe())
        #expect(f == MPTCPFeatures(sockets: true, tcpIsMPTCP: true, subflowInfo: true, fullInfo: true, nativeSpliceRead: true))
        #expect(f.report.allSatisfy { $0.hasPrefix("yes") })
    }

    /// Linux 6.18 (this machine): splicing out of MPTCP works but copies in the kernel.
    @Test func beforeSevenSpliceOutOfMPTCPCopies() {
        let f = MPTCPFeatures.detect(probe(symbols: ["mptcp_sendmsg", "mptcp_recvmsg"]))
        #expect(!f.nativeSpliceRead)
        #expect(f.report.contains { $0.hasPrefix("no ") && $0.contains("MPTCP splice_read (7.0)") && $0.contains("copies") })
        // The real symbol table is read, and has MPTCP's functions on this kernel.
        #expect(MPTCPFeatures.Probe.kernelSymbols().contains("mptcp_sendmsg"))
    }

    /// Debian 12's 6.1: no TCP_IS_MPTCP (6.10), no MPTCP_FULL_INFO (6.5).
    @Test func sixOneFallsBackToMPTCPInfo() {
        let f = MPTCPFeatures.detect(probe(unknown: [43, 4]))
        #expect(f.sockets && f.subflowInfo && !f.tcpIsMPTCP && !f.fullInfo)
        #expect(f.report.contains { $0.contains("TCP_IS_MPTCP") && $0.contains("read from MPTCP_INFO instead") })
        #expect(f.report.contains { $0.contains("MPTCP_FULL_INFO") && $0.hasPrefix("no") })
    }

    @Test func mptcpDisabledMeansPlainTCP() {
        let f = MPTCPFeatures.detect(probe(mptcp: false))
        #expect(!f.sockets && !f.tcpIsMPTCP && !f.fullInfo)
        #expect(f.report.first?.contains("connections run plain TCP") == true)
    }

    @Test func ringSetupFallbacks() {
        let refused = RingFeatures.detect { .failure(RingError(code: EPERM)) }
        #expect(!refused.available && refused.report.first?.contains("cannot run") == true)
        let coop = RingFeatures.detect { .success(curing_coop()) }
        #expect(coop.available && !coop.deferTaskrun && coop.coopTaskrun)
        #expect(coop.report.contains { $0.contains("COOP_TASKRUN instead") })
        let plain = RingFeatures.detect { .success(0) }
        #expect(!plain.coopTaskrun && plain.report.contains { $0.contains("default set-up") })
        let real = RingFeatures.detect()
        #expect(real.available, "this machine runs the relay: io_uring must be there")
    }

    /// IORING_SETUP_COOP_TASKRUN (256), as the kernel's uapi header defines it.
    func curing_coop() -> UInt32 { 1 << 8 }
}
