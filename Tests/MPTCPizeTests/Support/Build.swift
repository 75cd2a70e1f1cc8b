import Foundation

/// The products under test, found in the build folder that holds this test binary
/// (`swift test` builds every product of the package, the CLI and the .so included).
enum Build {
    static let directory: String = {
        if let dir = ProcessInfo.processInfo.environment["MPTCPIZE_BUILD_DIR"], !dir.isEmpty { return dir }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().path
    }()

    static var cli: String { "\(directory)/mptcpize-cli" }
    static var library: String { "\(directory)/libmptcpize.so" }

    /// Throws a clear instruction when a product is missing, instead of an obscure test failure.
    static func require() throws {
        for path in [cli, library] where !FileManager.default.isExecutableFile(atPath: path) && !FileManager.default.fileExists(atPath: path) {
            throw TestError("\(path) is missing: run `swift build` (or set MPTCPIZE_BUILD_DIR to the folder holding mptcpize-cli and libmptcpize.so)")
        }
    }
}
