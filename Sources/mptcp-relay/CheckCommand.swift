import ArgumentParser
import Foundation
import RelayConfig
import MPTCPSocket
import URing
#if canImport(Glibc)
import Glibc
#endif

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a config file: syntax, values, key files, and that every listen address can be bound.")

    @OptionGroup var file: ConfigFileOption

    @Flag(help: "Skip the bind probe (for checking a config while the relay already listens on it).")
    var noBind = false

    @Flag(help: "Print what this kernel supports (probed) and what the relay does without each feature.")
    var kernel = false

    func validate() throws {
        if !kernel { _ = try file.required() }
    }

    func run() throws {
        if kernel {
            var uts = utsname()
            uname(&uts)
            let release = withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            print("kernel \(release)")
            for line in RingFeatures.detect().report + MPTCPFeatures.detect().report { print("  " + line) }
            guard file.config != nil else { return }
        }
        let config = try file.required()
        let loaded = try loadConfigOrExit(config)
        let problems = noBind ? [] : loaded.probeListeners()
        for p in problems { printError("\(p)") }
        if !problems.isEmpty { throw ExitCode(1) }
        for warning in loaded.wanWarnings() { printError(warning) }
        let modes = loaded.settings.listeners.map { "\($0.address) \($0.mode)" }.joined(separator: "; ")
        print("\(config): OK: \(loaded.settings.listeners.count) listener(s): \(modes)")
        for line in loaded.wanHealthSummary() { print(line) }
        for line in loaded.wanRoutingSummary() { print(line) }
        for line in loaded.udpSummary() { print(line) }
        for line in loaded.fleetInstructions() { print(line) }
        for line in loaded.tunnelSummary() { print(line) }
    }
}
