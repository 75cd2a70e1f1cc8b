import Synchronization
import TunnelProtocol

/// A tunnel server's per-key bookkeeping, shared by all workers: open connections against
/// each key's limit, which keys the running config still holds (a header read under a listener
/// record from before a reload must not revive a removed key), and the per-key totals the
/// metrics report. One lock, taken once when a header is accepted or refused and once when a
/// connection closes: never on the data path.
///
/// Metric labels are bounded: the first `labelCap` key names seen in the process's life get a
/// label of their own, any later one counts under "other", so a server with thousands of keys
/// cannot grow the scrape without bound.
final class TunnelKeyAccounts: Sendable {
    static let labelCap = 256
    static let otherLabel = "other"

    struct AccountKey: Hashable {
        var name: KeyName
        var id: UInt32
    }

    private struct Account {
        var key: AccountKey
        var label: String
        var open = 0
    }

    /// Cumulative per label (they never go down, as Prometheus counters must not).
    struct Totals: Sendable, Equatable {
        var accepted: UInt64 = 0
        var refused: UInt64 = 0
        var bytesUp: UInt64 = 0
        var bytesDown: UInt64 = 0
    }

    private struct State {
        /// Slot -> account; a slot is reused only once its key is gone and nothing holds it.
        var accounts: [Account?] = []
        var slots: [AccountKey: Int] = [:]
        var free: [Int] = []
        /// Keys of the running config (every tunnel-server listener's keyring).
        var current: Set<AccountKey> = []
        var labelled: Set<KeyName> = []
        var totals: [String: Totals] = [:]
    }
    private let state = Mutex(State())

    /// The keys of the running config. Returns the slots of keys no longer held that still
    /// have open connections (for `revoke = "now"`).
    func install(_ keyrings: [TunnelKeyring]) -> [Int32] {
        var current = Set<AccountKey>()
        for ring in keyrings { for e in ring.entries { current.insert(AccountKey(name: e.name, id: e.key.id)) } }
        return state.withLock { s in
            s.current = current
            var revoked: [Int32] = []
            for (key, slot) in s.slots where !current.contains(key) {
                if s.accounts[slot]!.open > 0 { revoked.append(Int32(slot)) } else { Self.drop(&s, slot) }
            }
            return revoked.sorted()
        }
    }

    /// One open connection for `entry`, unless the key was removed or holds its limit.
    func acquire(_ entry: TunnelKeyring.Entry, limit: Int?) -> Result<Int32, Rejection> {
        let key = AccountKey(name: entry.name, id: entry.key.id)
        return state.withLock { s in
            guard s.current.contains(key) else {
                return .failure(Rejection(.notAuthorized, .unknownKeyName(entry.name)))
            }
            let slot = Self.slot(&s, key)
            let label = s.accounts[slot]!.label
            if let limit, s.accounts[slot]!.open >= limit {
                s.totals[label, default: Totals()].refused += 1
                return .failure(Rejection(.resourceExceeded, .keyAtLimit(entry.name, limit: limit)))
            }
            s.accounts[slot]!.open += 1
            s.totals[label, default: Totals()].accepted += 1
            return .success(Int32(slot))
        }
    }

    /// A header with a known key that was refused anyway (bad MAC, replay, clock, policy).
    func refused(_ entry: TunnelKeyring.Entry) {
        let key = AccountKey(name: entry.name, id: entry.key.id)
        state.withLock { s in
            let label = s.slots[key].map { s.accounts[$0]!.label } ?? Self.label(&s, entry.name)
            s.totals[label, default: Totals()].refused += 1
        }
    }

    /// The connection holding `slot` closed after moving these bytes.
    func release(_ slot: Int32, bytesUp: UInt64, bytesDown: UInt64) {
        state.withLock { s in
            let i = Int(slot)
            guard i >= 0, i < s.accounts.count, var account = s.accounts[i] else { return }
            account.open -= 1
            s.accounts[i] = account
            s.totals[account.label, default: Totals()].bytesUp &+= bytesUp
            s.totals[account.label, default: Totals()].bytesDown &+= bytesDown
            if account.open <= 0 && !s.current.contains(account.key) { Self.drop(&s, i) }
        }
    }

    /// Per label: open connections now and the totals so far, sorted by label.
    func reports() -> [TunnelKeyReport] {
        state.withLock { s in
            var open: [String: Int] = [:]
            for case let a? in s.accounts { open[a.label, default: 0] += a.open }
            return s.totals.keys.sorted().map { label in
                let t = s.totals[label]!
                return TunnelKeyReport(label: label, open: open[label] ?? 0, accepted: t.accepted, refused: t.refused,
                              bytesUp: t.bytesUp, bytesDown: t.bytesDown)
            }
        }
    }

    private static func slot(_ s: inout State, _ key: AccountKey) -> Int {
        if let slot = s.slots[key] { return slot }
        let account = Account(key: key, label: label(&s, key.name))
        let slot: Int
        if let reused = s.free.popLast() {
            slot = reused
            s.accounts[slot] = account
        } else {
            slot = s.accounts.count
            s.accounts.append(account)
        }
        s.slots[key] = slot
        return slot
    }

    private static func label(_ s: inout State, _ name: KeyName) -> String {
        if s.labelled.contains(name) { return name.description }
        guard s.labelled.count < labelCap else { return otherLabel }
        s.labelled.insert(name)
        return name.description
    }

    private static func drop(_ s: inout State, _ slot: Int) {
        guard let account = s.accounts[slot] else { return }
        s.slots.removeValue(forKey: account.key)
        s.accounts[slot] = nil
        s.free.append(slot)
    }
}

/// One key label of a tunnel server (a key's name, or "other" past the label cap): its open
/// connections now, and what it was let in for, refused and moved so far (closed connections).
public struct TunnelKeyReport: Sendable, Equatable {
    public var label: String
    public var open: Int
    public var accepted: UInt64
    public var refused: UInt64
    public var bytesUp: UInt64
    public var bytesDown: UInt64
}
