import ArgumentParser
import CMPTCPizeSupervisor
#if canImport(Glibc)
import Glibc
#endif

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a program with its TCP sockets turned into MPTCP sockets.",
        discussion: "The program replaces mptcpize (exec), so its exit status is the command's own."
    )

    @Flag(name: .short, help: "Print one line on stderr per socket the shim converts, keeps or falls back on.")
    var debug = false

    @Flag(help: "Use the seccomp supervisor instead of the preload (automatic for static executables): reaches raw socket() syscalls.")
    var seccomp = false

    @OptionGroup var scope: ScopeOptions

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The program and its arguments.", valueName: "command"))
    var command: [String] = []

    mutating func validate() throws {
        // Passthrough parsing captures everything after `run`, so answer a leading --help here.
        if let first = command.first, first == "-h" || first == "--help" {
            throw CleanExit.helpRequest(self)
        }
        guard let first = command.first, !first.isEmpty else {
            throw ValidationError("missing the program to run, e.g. `mptcpize run curl https://example.com`")
        }
    }

    func run() throws {
        setenv(GoDebug.variable, GoDebug.adding(to: getenv(GoDebug.variable).map { String(cString: $0) }), 1)
        let isStatic = ExecutableKind.resolve(command[0]).map(ExecutableKind.isStaticELF) ?? false
        if seccomp || isStatic {
            try supervise(reason: seccomp ? "requested" : "static executable")
        }
        let library = try ShimLocator.locate()
        setenv("LD_PRELOAD", Self.preloadValue(adding: library, to: getenv("LD_PRELOAD").map { String(cString: $0) }), 1)
        if debug { setenv("MPTCPIZE_DEBUG", "1", 1) }
        for (name, value) in scope.environment { setenv(name, value, 1) }

        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) }
        argv.append(nil)
        execvp(command[0], argv)
        let err = errno
        let reason = String(cString: strerror(err))
        printError("mptcpize: cannot run '\(command[0])': \(reason)")
        // The shell's conventions: 127 for not found, 126 for found but not executable.
        throw ExitCode(err == ENOENT ? 127 : 126)
    }

    /// Runs the program under the seccomp supervisor; never returns (exits with its status).
    private func supervise(reason: String) throws -> Never {
        if scope.scope != nil || scope.ports != nil || scope.excludePorts != nil {
            throw ValidationError("--scope, --ports and --exclude-ports need the preload; the supervisor mode (\(reason)) converts every TCP socket")
        }
        // `enable --seccomp --debug` passes debug through the unit's environment.
        let fromEnv = getenv("MPTCPIZE_DEBUG").map { String(cString: $0) }
        let debugOn = debug || (fromEnv.map { !$0.isEmpty && $0 != "0" && $0 != "no" } ?? false)
        if debugOn { printError("mptcpize: supervisor mode (\(reason))") }
        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) }
        argv.append(nil)
        var err = [CChar](repeating: 0, count: 512)
        let status = mz_supervise(argv, debugOn ? 1 : 0, &err, UInt(err.count))
        if status < 0 {
            let message = String(decoding: err.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CLIError("mptcpize: supervisor mode failed: \(message)")
        }
        throw ExitCode(status)
    }

    /// Appends the shim to an existing LD_PRELOAD (ld.so accepts ':' or ' ' between entries).
    static func preloadValue(adding library: String, to existing: String?) -> String {
        guard let existing, !existing.isEmpty else { return library }
        let entries = existing.split(whereSeparator: { $0 == ":" || $0 == " " })
        if entries.contains(where: { $0 == library }) { return existing }
        return existing + ":" + library
    }
}
