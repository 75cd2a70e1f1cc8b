import Foundation

/// A running `mptcp-relay run` inside a namespace, with its log captured.
public final class Relay: @unchecked Sendable {
    public let process: BackgroundProcess
    public let listenPort: Int

    /// Starts the relay in `ns` and waits until it listens. `listen`/`upstream` are
    /// HOST:PORT strings ("192.168.50.1:5201", "[fd00:1::2]:5201").
    public init(ns: String, listen: String, upstream: String, extraArgs: [String] = [],
                log: URL) async throws {
        guard let port = Int(listen.split(separator: ":").last ?? "") else {
            throw ProcError("cannot find the port in listen address \(listen)")
        }
        listenPort = port
        let bin = try await RelayBinary.path()
        process = try BackgroundProcess(
            in: ns,
            [bin, "run", "--listen", listen, "--upstream", upstream, "--log-level", "info"] + extraArgs,
            log: log)
        do {
            try await Net.waitListening(ns: ns, port: port, alive: { [process] in process.isRunning })
            // The socket listens before the workers' rings exist; "listening on" is logged
            // once every worker runs (descriptor counts taken earlier would miss the rings).
            guard await process.waitForLog("listening on", timeout: 10) else {
                throw ProcError("the relay listens but never logged that its workers run")
            }
        } catch {
            await process.stop()
            throw ProcError("\(error); relay log:\n\(process.log)")
        }
    }

    public var pid: Int32 { process.pid }
    public var log: String { process.log }

    /// Waits until the log contains `text` `count` times (see BackgroundProcess.waitForLog).
    @discardableResult
    public func waitForLog(_ text: String, count: Int = 1, timeout: Double = 10) async -> Bool {
        await process.waitForLog(text, count: count, timeout: timeout)
    }

    /// SIGTERM, a second one after 5 s if connections are still open, SIGKILL 5 s later;
    /// the exit status (the test harness fails a test whose relay did not end with 0).
    @discardableResult
    public func stop() async -> Int32 { await process.stopTwice(grace: 5) }
}
