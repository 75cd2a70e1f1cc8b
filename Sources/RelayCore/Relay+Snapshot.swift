import Dispatch

extension Relay {
    /// Asks every worker for a snapshot; `done` runs on a worker thread (or at the deadline
    /// on a Dispatch thread) with the answers of the workers that answered in time.
    /// A worker answers at its next wake, so the data path never waits for the caller.
    public func snapshot(withConnections: Bool, detailBudget: Int = 256, detailOffset: Int = 0, timeout: Double = 2,
                         done: @escaping @Sendable ([WorkerSnapshot]) -> Void) {
        let boxes = mailboxes
        let request = SnapshotRequest(expected: boxes.count, withConnections: withConnections, detailBudget: detailBudget,
                                      detailOffset: detailOffset, done: done)
        for m in boxes { m.post { $0.snapshots.append(request) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { request.expire() }
    }
}
