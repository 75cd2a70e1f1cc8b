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
        subcommands: [RunCommand.self, CheckCommand.self, NftCommand.self, WanCommand.self, StatusCommand.self, InitCommand.self],
        defaultSubcommand: nil)
}

enum RelayVersion {
    static let string = BuildVersion.string
}

/// `--config FILE`, shared by run (where it is optional), check and nft.
struct ConfigFileOption: ParsableArguments {
    @Option(help: ArgumentHelp("Config file (TOML, see docs/configuration.md).", valueName: "file"))
    var config: String?

    /// For commands that need the file.
    func required() throws -> String {
        guard let config else { throw ValidationError("give --config FILE") }
        return config
    }
}

/// The listener modes a command line can pick (forward is the default: --upstream alone).
enum ListenerModeFlag: String, EnumerableFlag {
    case transparent, redirect, server

    static func help(for value: ListenerModeFlag) -> ArgumentHelp? {
        switch value {
        case .transparent: return "Intercepted by TPROXY: the upstream is each connection's original destination."
        case .redirect: return "Intercepted by NAT REDIRECT: the upstream comes from SO_ORIGINAL_DST."
        case .server: return "Server mode: accept MPTCP; with --upstream forward plain TCP to that backend, without it serve the tunnel (needs --key-file)."
        }
    }
}

extension SocketAddress: ExpressibleByArgument {
    public init?(argument: String) {
        guard let address = try? SocketAddress(parsing: argument) else { return nil }
        self = address
    }
}

extension Upstream: ExpressibleByArgument {
    public init?(argument: String) {
        guard let upstream = try? Upstream(parsing: argument) else { return nil }
        self = upstream
    }
}

extension SpliceEngine: ExpressibleByArgument {}

extension Logger.Level: @retroactive ExpressibleByArgument {}
