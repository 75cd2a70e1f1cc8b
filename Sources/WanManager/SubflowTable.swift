import Foundation
import Netlink

/// Live MPTCP subflows per WAN interface, kept from `mptcp_pm_events` (the initial subflow
/// is reported as ESTABLISHED, the others as SUB_ESTABLISHED; CLOSED ends them all).
final class SubflowTable: @unchecked Sendable {
    struct Key: Hashable { var token: UInt32; var source: IPAddress?; var sourcePort: UInt16 }

    private let lock = NSLock()
    private var live: [Key: String] = [:]

    func apply(_ event: PathManagerEvent, interface: String) {
        let key = Key(token: event.token, source: event.source, sourcePort: event.sourcePort)
        lock.withLock {
            switch event.kind {
            case .established, .subflowEstablished: live[key] = interface
            case .subflowClosed: live[key] = nil
            case .closed: live = live.filter { $0.key.token != event.token }
            // Events were lost: what is live is unknown, start over.
            case .overrun: live = [:]
            default: break
            }
        }
    }

    func perInterface() -> [String: Int] {
        lock.withLock { Dictionary(live.values.map { ($0, 1) }, uniquingKeysWith: +) }
    }
}
