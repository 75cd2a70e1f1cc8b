import Synchronization

/// The WAN manager's way to tell the workers where new upstream connections start. A
/// Sendable handle of its own, so the manager's thread needs no reference to the Relay.
public final class UplinkSteeringChannel: Sendable {
    /// Posts happen under this lock too, so a worker's mailbox always ends with the latest.
    let current = Mutex(UplinkSteering.none)
    let mailboxes: Relay.MailboxList

    init(mailboxes: Relay.MailboxList) { self.mailboxes = mailboxes }

    /// Reaches every worker at its next wake; safe from any thread, also before the relay starts.
    public func steer(_ next: UplinkSteering) {
        current.withLock { value in
            guard value != next else { return }
            value = next
            for m in mailboxes.all { m.post { $0.steering = next } }
        }
    }

    /// A worker's mailbox just joined the list: it gets the current decision, under the
    /// lock, so a steer() racing with it cannot leave it with an older one.
    func postCurrent(to mailbox: WorkerMailbox) {
        current.withLock { value in
            if value != .none { mailbox.post { $0.steering = value } }
        }
    }
}
