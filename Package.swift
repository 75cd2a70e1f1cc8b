// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "mptcp-relay",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "mptcp-relay", targets: ["mptcp-relay"]),
        .library(name: "MPTCPSocket", targets: ["MPTCPSocket"]),
        // BEGIN mptcpize products
        // SwiftPM names a dynamic library lib<product>.so and lets no two products share a name,
        // so the library takes "mptcpize" (-> libmptcpize.so) and the CLI is built as
        // mptcpize-cli; scripts/install-mptcpize.sh installs it as bin/mptcpize.
        .executable(name: "mptcpize-cli", targets: ["mptcpize"]),
        .library(name: "mptcpize", type: .dynamic, targets: ["CMPTCPize"]),
        // END mptcpize products
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // Kernel interfaces reached from C: liburing and the Linux socket headers Glibc's module omits.
        .target(name: "CURing", linkerSettings: [.linkedLibrary("uring")]),
        .target(name: "CNetLinux"),

        // Library layers: the ring knows nothing of relaying, the relay nothing of the CLI.
        .target(name: "MPTCPSocket", dependencies: [
            "CNetLinux",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .target(name: "URing", dependencies: ["CURing"]),
        .target(name: "RelayCore", dependencies: [
            "URing", "MPTCPSocket", "CNetLinux", "TunnelProtocol",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        // Config file (TOML) -> RelaySettings, and the nftables rules a config needs.
        .target(name: "RelayConfig", dependencies: [
            "RelayCore", "MPTCPSocket", "TunnelProtocol",
            .product(name: "TOMLKit", package: "TOMLKit"),
        ]),
        // Wire format of the gateway <-> aggregation server tunnel header (RFC 8803 based).
        .target(name: "TunnelProtocol", dependencies: [
            "MPTCPSocket",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .executableTarget(name: "mptcp-relay", dependencies: [
            "RelayCore", "MPTCPSocket", "RelayConfig", "TunnelProtocol", "BuildVersion",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // BEGIN mptcpize targets
        .target(name: "CMPTCPize", linkerSettings: [.linkedLibrary("dl")]),
        .executableTarget(name: "mptcpize", dependencies: [
            "BuildVersion",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Drives the built binaries (`swift test` builds every product of the package first).
        .testTarget(name: "MPTCPizeTests"),
        // END mptcpize targets

        // BEGIN version stamp
        // `--version` of both CLIs: the version scripts/version.sh derives from git, stamped at build time.
        .plugin(name: "VersionStamp", capability: .buildTool()),
        .target(name: "BuildVersion", plugins: ["VersionStamp"]),
        // END version stamp

        // Shared by the test targets: namespace testbed, process runner, hashing.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "MPTCPSocketTests", dependencies: ["MPTCPSocket"]),
        .testTarget(name: "RelayCoreTests", dependencies: ["RelayCore"]),
        .testTarget(name: "RelayConfigTests", dependencies: ["RelayConfig", "RelayCore", "MPTCPSocket", "TunnelProtocol"]),
        .testTarget(name: "TunnelProtocolTests", dependencies: ["TunnelProtocol"]),
        .testTarget(name: "IntegrationTests", dependencies: ["TestSupport"]),
    ]
)
