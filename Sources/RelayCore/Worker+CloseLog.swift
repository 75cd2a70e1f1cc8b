#if canImport(Glibc)
import Glibc
#endif
import Logging
import MPTCPSocket
import RelayLog

/// The close line: the one line a connection gets at info level (notice when it did not
/// end well). The worker copies a CloseRecord to the log's writer thread, which formats it:
/// no String, no allocation and no formatting on the worker per connection.
extension Worker {
    func logClosed(_ c: UnsafeMutablePointer<Connection>, lost: Bool) {
        let level: Logger.Level
        switch c.pointee.reason {
        case .completed, .idleTimeout: level = .info
        default: level = .notice
        }
        guard let closeLog, c.pointee.reason.refusal == nil else {
            // A refusal's reason is a text, which a record does not carry; refusals are rare.
            logger.log(level: level, "\(closeText(c, lost: lost))")
            return
        }
        if level >= closeLog.logLevel { closeLog.write(closeRecord(c, lost: lost), level: level) }
    }

    /// The close line's text, made on the worker (tests read it from their log handler).
    func closeText(_ c: UnsafeMutablePointer<Connection>, lost: Bool) -> String {
        var line = LogLine()
        closeRecord(c, lost: lost).writeMessage(to: &line, refusal: c.pointee.reason.refusal)
        return line.text
    }

    private func closeRecord(_ c: UnsafeMutablePointer<Connection>, lost: Bool) -> CloseRecord {
        let route: CloseRecord.Route
        if case .tunnelServer = listeners[c.pointee.listener].settings.mode {
            route = .tunnelServer
        } else {
            route = listeners[c.pointee.listener].settings.tunnelsOut ? .tunnelGateway : .upstream
        }
        return CloseRecord(
            worker: Int32(truncatingIfNeeded: index), sequence: c.pointee.sequence, route: route,
            client: AddressBytes(&c.pointee.peer),
            target: c.pointee.targetLength > 0 ? AddressBytes(&c.pointee.target) : .none,
            destination: AddressBytes(&c.pointee.destination),
            key: c.pointee.keyName, mptcp: c.pointee.relayed ? c.pointee.status : nil, lost: lost,
            cause: c.pointee.reason.cause, bytesUp: c.pointee.up.bytes, bytesDown: c.pointee.down.bytes,
            nanoseconds: now - c.pointee.openedAt, subflows: Int32(truncatingIfNeeded: c.pointee.subflows))
    }

    /// Close records go to the log thread when the worker's logger is RelayLog's; any other
    /// handler (a test's) gets the close line as text.
    static func closeLog(for logger: Logger) -> LogRecordWriter? {
        (logger.handler as? BufferedLogHandler)?.recordWriter(source: "RelayCore")
    }
}
