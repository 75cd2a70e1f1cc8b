import ArgumentParser
import Foundation
import RelayConfig

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a config file: syntax, values, key files, and that every listen address can be bound.")

    @Option(help: ArgumentHelp("Config file to check.", valueName: "file"))
    var config: String

    @Flag(help: "Skip the bind probe (for checking a config while the relay already listens on it).")
    var noBind = false

    func run() throws {
        let loaded = try loadConfigOrExit(config)
        let problems = noBind ? [] : loaded.probeListeners()
        for p in problems { printError("\(p)") }
        if !problems.isEmpty { throw ExitCode(1) }
        for warning in loaded.wanWarnings() { printError(warning) }
        let modes = loaded.settings.listeners.map { "\($0.address) \($0.mode)" }.joined(separator: "; ")
        print("\(config): OK: \(loaded.settings.listeners.count) listener(s): \(modes)")
    }
}
