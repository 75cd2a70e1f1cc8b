import ArgumentParser
import BuildVersion
import Logging
import MPTCPSocket
import RelayCore

@main
struct MPTCPRelayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mptcp-relay",
        abstract: "Relay plain TCP connections over Multipath TCP (io_uring + splice).",
        discussion: """
            Accepts plain TCP and re-originates each connection upstream as an MPTCP socket, \
            falling back to TCP when the upstream or the kernel lacks MPTCP (each connection's \
            log line says which).
            """,
        version: RelayVersion.string,
        subcommands: [RunCommand.self, CheckCommand.self, NftCommand.self],
        defaultSubcommand: nil)
}

enum RelayVersion {
    static let string = BuildVersion.string
}

extension SocketAddress: ExpressibleByArgument {
    public init?(argument: String) {
        guard let address = try? SocketAddress(parsing: argument) else { return nil }
        self = address
    }
}

extension SpliceEngine: ExpressibleByArgument {}

extension Logger.Level: @retroactive ExpressibleByArgument {}
