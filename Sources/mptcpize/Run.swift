import ArgumentParser
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
        let library = try ShimLocator.locate()
        setenv("LD_PRELOAD", Self.preloadValue(adding: library, to: getenv("LD_PRELOAD").map { String(cString: $0) }), 1)
        if debug { setenv("MPTCPIZE_DEBUG", "1", 1) }
        for (name, value) in scope.environment { setenv(name, value, 1) }
        setenv(GoDebug.variable, GoDebug.adding(to: getenv(GoDebug.variable).map { String(cString: $0) }), 1)

        var argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) }
        argv.append(nil)
        execvp(command[0], argv)
        let err = errno
        let reason = String(cString: strerror(err))
        printError("mptcpize: cannot run '\(command[0])': \(reason)")
        // The shell's conventions: 127 for not found, 126 for found but not executable.
        throw ExitCode(err == ENOENT ? 127 : 126)
    }

    /// Appends the shim to an existing LD_PRELOAD (ld.so accepts ':' or ' ' between entries).
    static func preloadValue(adding library: String, to existing: String?) -> String {
        guard let existing, !existing.isEmpty else { return library }
        let entries = existing.split(whereSeparator: { $0 == ":" || $0 == " " })
        if entries.contains(where: { $0 == library }) { return existing }
        return existing + ":" + library
    }
}
