import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// Options shared by enable and disable.
struct UnitOptions: ParsableArguments {
    @Argument(help: "The systemd service, e.g. nginx or nginx.service.")
    var unit: String

    @Option(help: ArgumentHelp(
        "Where drop-ins go (default: $MPTCPIZE_SYSTEMD_DIR, else /etc/systemd/system).", valueName: "dir"))
    var unitDir: String?

    @Flag(help: "Do not run `systemctl daemon-reload` afterwards.")
    var noReload = false

    func dropIn() throws -> SystemdDropIn {
        let fromEnv = getenv("MPTCPIZE_SYSTEMD_DIR").map { String(cString: $0) }
        let directory = unitDir ?? (fromEnv?.isEmpty == false ? fromEnv! : SystemdDropIn.defaultDirectory)
        return SystemdDropIn(unit: try SystemdDropIn.normalize(unit), directory: directory)
    }
}

struct Enable: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a systemd service use MPTCP (adds the drop-in UNIT.d/mptcpize.conf).")

    @OptionGroup var options: UnitOptions
    @OptionGroup var scope: ScopeOptions

    @Flag(help: "Log the shim's decisions to the service's stderr (the journal).")
    var debug = false

    @Flag(help: "Run the service under the seccomp supervisor (for static binaries) instead of preloading the shim.")
    var seccomp = false

    func run() throws {
        let dropIn = try options.dropIn()
        var environment = scope.environment
        if debug { environment.append(("MPTCPIZE_DEBUG", "1")) }
        environment.append((GoDebug.variable, GoDebug.adding(to: GoDebug.unitValue(unitFiles: dropIn.unitFiles()))))
        if seccomp {
            guard scope.environment.isEmpty else {
                throw ValidationError("--scope, --ports and --exclude-ports need the preload; the supervisor converts every TCP socket")
            }
            guard let cli = ShimLocator.executablePath() else { throw CLIError("cannot tell where mptcpize itself is (/proc/self/exe)") }
            let lines = try ExecStartWrapper.lines(commands: ExecStartWrapper.commands(unitFiles: dropIn.unitFiles()), cli: cli)
            try dropIn.write(SystemdDropIn.supervisedContents(execStart: lines, environment: environment))
        } else {
            try dropIn.write(SystemdDropIn.contents(library: try ShimLocator.locate(), environment: environment))
        }
        print("Wrote \(dropIn.path).")
        print(try SystemdReload.perform(skip: options.noReload))
        print("Restart the service to apply: systemctl restart \(dropIn.unit)")
    }
}

struct Disable: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Undo `mptcpize enable` (removes the drop-in UNIT.d/mptcpize.conf).")

    @OptionGroup var options: UnitOptions

    func run() throws {
        let dropIn = try options.dropIn()
        guard try dropIn.remove() else {
            print("MPTCP was not enabled for \(dropIn.unit) by mptcpize (no \(dropIn.path)); nothing to do.")
            return
        }
        print("Removed \(dropIn.path).")
        print(try SystemdReload.perform(skip: options.noReload))
        print("Restart the service to apply: systemctl restart \(dropIn.unit)")
    }
}
