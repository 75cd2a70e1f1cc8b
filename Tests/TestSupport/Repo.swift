import Foundation

public enum Repo {
    /// The repository root, found from this source file's location
    /// (Tests/TestSupport/Repo.swift), so tests work from any working directory.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // TestSupport
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    public static func path(_ relative: String) -> URL { root.appendingPathComponent(relative) }
}
