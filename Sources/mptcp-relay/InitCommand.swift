#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import MPTCPSocket
import Netlink
import RelayConfig
import WanManager

/// `mptcp-relay init gateway|server`: from a bare box to a config that passes `check` and
/// aggregates when run, asking only what cannot be detected.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Write a working, commented config for a gateway or an aggregation server.",
        subcommands: [InitGateway.self, InitServer.self])
}

/// Options both roles share.
struct InitOutput: ParsableArguments {
    @Option(help: ArgumentHelp("Where to write the config.", valueName: "file"))
    var output = "/etc/mptcp-relay/config.toml"

    @Option(help: ArgumentHelp("Tunnel key file; a relative path is taken from the config's directory. Created (0600, 32 random bytes) when missing, kept when present.", valueName: "file"))
    var keyFile = "tunnel.key"

    @Flag(help: "Overwrite an existing config (an existing key file is always kept).")
    var force = false

    var directory: String { (output as NSString).deletingLastPathComponent.isEmpty ? "." : (output as NSString).deletingLastPathComponent }
    var keyPath: String { keyFile.hasPrefix("/") ? keyFile : directory + "/" + keyFile }

    func refuseOverwrite() throws {
        if FileManager.default.fileExists(atPath: output) && !force {
            printError("init: \(output) exists: give --force to overwrite it (or --output another file)")
            throw ExitCode(1)
        }
    }

    /// The key file: kept when it exists (a re-run must not cut off a server that has it),
    /// else 32 random bytes as hex, created 0600 and never over anything.
    func ensureKey() throws -> (hex: String, created: Bool) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        if let existing = try? String(contentsOfFile: keyPath, encoding: .utf8) {
            return (existing.trimmingCharacters(in: .whitespacesAndNewlines), false)
        }
        var rng = SystemRandomNumberGenerator()
        let hex = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined()
        let fd = open(keyPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            printError("init: cannot create \(keyPath): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        defer { close(fd) }
        let line = Array((hex + "\n").utf8)
        guard write(fd, line, line.count) == line.count else {
            printError("init: cannot write \(keyPath): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        return (hex, true)
    }

    func writeConfig(_ text: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        do { try text.write(toFile: output, atomically: true, encoding: .utf8) } catch {
            printError("init: cannot write \(output): \(error)")
            throw ExitCode(1)
        }
        // What `run` will read: a config init wrote must pass `check` as it is.
        do { _ = try RelayConfigFile.load(path: output) } catch {
            printError("init: the config written does not pass check (a bug: please report it): \(error)")
            throw ExitCode(1)
        }
    }

    func header(_ role: String) -> String {
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count)
        let date = Date().formatted(.iso8601.year().month().day())
        return """
            # mptcp-relay \(role), written by `mptcp-relay init \(role)` on \(String(cString: host)), \(date).
            # Check it:  mptcp-relay check --config \(output)
            # Reference: docs/configuration.md (every key, its default and why).
            """
    }
}

struct InitGateway: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Detect the uplinks and the LAN, write a transparent gateway config and a tunnel key.",
        discussion: """
            Uplinks are the interfaces with a default route in the main table (as DHCP or PPP \
            leave them); LAN interfaces are those with a private or unique-local prefix and no \
            default route. On a terminal it asks to confirm each (Enter accepts); every answer \
            is also an option, and --yes asks nothing.
            """)

    @OptionGroup var out: InitOutput

    @Option(help: ArgumentHelp("Uplink interfaces, comma-separated (default: detected).", valueName: "names"))
    var wan: String?

    @Option(help: ArgumentHelp("LAN interfaces, comma-separated (default: detected).", valueName: "names"))
    var lan: String?

    @Option(help: ArgumentHelp("Aggregation server ADDR:PORT to tunnel through (default: none; ask on a terminal).", valueName: "address"))
    var server: String?

    @Flag(help: "Ask nothing: take what was detected and the options given.")
    var yes = false

    func run() throws {
        try out.refuseOverwrite()
        let survey: SiteSurvey
        do {
            let routing = try RoutingClient()
            survey = SiteSurvey.detect(KernelView(links: try routing.links(), addresses: try routing.addresses(), routes: try routing.routes()))
        } catch {
            printError("init: cannot read this host's interfaces and routes over netlink: \(error)")
            throw ExitCode(1)
        }
        let interactive = !yes && isatty(0) == 1
        var wans = wan.map(Self.list) ?? survey.uplinks.map(\.interface)
        var lans = lan.map(Self.list) ?? survey.lans.map(\.interface)
        var via = server
        if interactive {
            print("Uplinks found (default routes): \(survey.uplinks.isEmpty ? "none" : survey.uplinks.map { "\($0.interface) (\($0.routes.joined(separator: "; ")))" }.joined(separator: ", "))")
            if wan == nil { wans = Self.ask("Uplink (WAN) interfaces", wans.joined(separator: ",")).map(Self.list) ?? wans }
            print("LAN interfaces found (private prefix, no default route): \(survey.lans.isEmpty ? "none" : survey.lans.map { "\($0.interface) (\($0.prefixes.joined(separator: " ")))" }.joined(separator: ", "))")
            if lan == nil { lans = Self.ask("LAN interfaces", lans.joined(separator: ",")).map(Self.list) ?? lans }
            if server == nil {
                print("An aggregation server (a VPS running `mptcp-relay init server`) makes every connection aggregate, not only those to hosts that speak MPTCP.")
                via = Self.ask("Aggregation server ADDR:PORT (empty: none)", "")
            }
        }
        guard !wans.isEmpty else {
            printError("init: no uplink found (no interface has a default route in the main table): name them with --wan eth1,wwan0")
            throw ExitCode(1)
        }
        guard !lans.isEmpty else {
            printError("init: no LAN interface found (none has a private prefix without a default route): name them with --lan eth0")
            throw ExitCode(1)
        }
        for name in wans + lans where if_nametoindex(name) == 0 {
            printError("init: no interface named '\(name)' on this host")
            throw ExitCode(1)
        }
        if let overlap = Set(wans).intersection(lans).first {
            printError("init: '\(overlap)' is named both as an uplink and as a LAN interface")
            throw ExitCode(1)
        }
        if let v = via, (try? SocketAddress(parsing: v)) == nil {
            printError("init: --server \(v) is not ADDR:PORT (write [ADDR6]:PORT for IPv6)")
            throw ExitCode(1)
        }
        let key = try out.ensureKey()
        var choices = InitialConfig.GatewayChoices(wans: wans, lans: lans, server: via, keyFile: out.keyFile)
        choices.adminPort = 9180
        try out.writeConfig(InitialConfig.gateway(choices, survey: survey, header: out.header("gateway")))
        print("wrote \(out.output) (uplinks: \(wans.joined(separator: ", ")); LAN: \(lans.joined(separator: ", "))\(via.map { "; through \($0)" } ?? ""))")
        print("\(key.created ? "created" : "kept") the tunnel key \(out.keyPath) (mode 0600)")
        print("""

            Start it:
              mptcp-relay nft --config \(out.output) | nft -f -
              mptcp-relay nft --config \(out.output) --routes | sh
              mptcp-relay run --config \(out.output)
            (or, from the package: systemctl enable --now mptcp-relay-nft mptcp-relay)

            On the aggregation server, this one command writes the same key and its config:
              (umask 077; set -o noclobber; mkdir -p /etc/mptcp-relay && echo \(key.hex) > /etc/mptcp-relay/tunnel.key) && mptcp-relay init server --key-file /etc/mptcp-relay/tunnel.key
            It never replaces a key the server already has (other gateways use it): if it says the file
            exists, copy that key here instead, to \(out.keyPath) (mode 0600).
            """)
        if via == nil {
            print("Then set via = \"SERVER:4443\" and key_file in \(out.output)'s [[listener]] (or re-run with --server SERVER:4443 --force).")
        }
    }

    static func list(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init).filter { !$0.isEmpty }
    }

    /// One question on the terminal; nil when the answer is empty (keep the default).
    static func ask(_ question: String, _ suggestion: String) -> String? {
        print("\(question) [\(suggestion)]: ", terminator: "")
        fflush(nil)  // every output stream: the prompt has no newline
        guard let line = readLine()?.trimmingCharacters(in: .whitespaces), !line.isEmpty else { return suggestion.isEmpty ? nil : suggestion }
        return line
    }
}

struct InitServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Write an aggregation server config for a tunnel key (the one `init gateway` printed).")

    @OptionGroup var out: InitOutput

    @Option(help: "Port the gateways' tunnels arrive on.")
    var port = 4443

    @Option(help: ArgumentHelp("A private destination prefix the gateways may reach through this server (loopback, private and this server's own addresses are refused otherwise); repeatable.", valueName: "prefix"))
    var allow: [String] = []

    func run() throws {
        try out.refuseOverwrite()
        guard (1...65535).contains(port) else {
            printError("init: --port \(port) is not a port number")
            throw ExitCode(1)
        }
        let key = try out.ensureKey()
        try out.writeConfig(InitialConfig.server(keyFile: out.keyFile, port: port, allow: allow, header: out.header("server")))
        print("wrote \(out.output) (tunnel server on port \(port))")
        print("\(key.created ? "created a new" : "kept the") tunnel key \(out.keyPath)\(key.created ? ": give the gateways the same key" : "")")
        print("""

            Start it:
              sysctl -w net.ipv4.tcp_fastopen=3     # the gateways' first bytes ride in the SYN
              ip mptcp limits set subflows 8 add_addr_accepted 8
              mptcp-relay run --config \(out.output)
            (or, from the package: systemctl enable --now mptcp-relay)
            The gateways' config needs: via = "THIS-SERVER:\(port)" and the same key_file.
            """)
    }
}
