import Synchronization

/// The WAN manager's way to tell the workers where new upstream connections start. A
/// Sendable handle of its own, so the manager's thread needs no reference to the Relay.
public final class UplinkSteeringChannel: Sendable {
    let current = Mutex(UplinkSteering.none)
    let mailboxes: Relay.MailboxList

    init(mailboxes: Relay.MailboxList) { self.mailboxes = mailboxes }

    /// Reaches every worker at its next wake; safe from any thread, also before the relay starts.
    public func steer(_ next: UplinkSteering) {
        let changed = current.withLock { value -> Bool in
            defer { value = next }
            return value != next
        }
        guard changed else { return }
        for m in mailboxes.all { m.post { $0.steering = next } }
    }

    var value: UplinkSteering { current.withLock { $0 } }
}
