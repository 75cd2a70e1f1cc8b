import ArgumentParser
import BuildVersion
#if canImport(Glibc)
import Glibc
#endif

@main
struct MPTCPize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mptcpize",
        abstract: "Run unmodified programs over Multipath TCP (MPTCP).",
        discussion: """
            Programs run under `mptcpize run` (or a unit enabled with `mptcpize enable`) get MPTCP \
            sockets instead of TCP ones through the LD_PRELOAD library libmptcpize.so. Where the \
            kernel refuses MPTCP, they get the TCP socket they asked for and work as before.
            """,
        version: BuildVersion.string,
        subcommands: [Run.self, Enable.self, Disable.self, Check.self]
    )
}

/// A failure the user can act on; printed as is, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One line on stderr (Glibc's `stderr` global is not concurrency-safe to touch from Swift 6).
func printError(_ message: String) {
    let bytes = Array((message + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
