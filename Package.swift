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
        // Operator listener (issue 11): FlyingFox has no SwiftNIO underneath (measured: a clean
        // build of it with swift-prometheus took 39 s here; NIO-based servers take minutes).
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
    ],
    targets: [
        // Kernel interfaces reached from C: liburing and the Linux socket headers Glibc's module omits.
        .target(name: "CURing", linkerSettings: [.linkedLibrary("uring")]),
        .target(name: "CNetLinux"),
        // BEGIN wan targets
        // Netlink (mptcp_pm generic netlink + rtnetlink) over Debian's libmnl, its Swift
        // wrappers, and the multi-WAN manager (pure reconcile logic + the thread applying it).
        .target(name: "CNetlink", linkerSettings: [.linkedLibrary("mnl")]),
        .target(name: "Netlink", dependencies: [
            "CNetlink",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .target(name: "WanManager", dependencies: [
            "Netlink",
            "MPTCPSocket",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .testTarget(name: "WanManagerTests", dependencies: ["WanManager", "Netlink", "RelayConfig"]),
        // END wan targets

        // Library layers: the ring knows nothing of relaying, the relay nothing of the CLI.
        .target(name: "MPTCPSocket", dependencies: [
            "CNetLinux",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        .target(name: "URing", dependencies: ["CURing"]),
        .target(name: "RelayCore", dependencies: [
            "URing", "MPTCPSocket", "CNetLinux", "TunnelProtocol", "RelayLog",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "SystemPackage", package: "swift-system"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ],
        // The data path runs on per-worker state only one thread touches: release builds skip
        // the runtime exclusivity checks (swift_beginAccess on every class property access in
        // the pump); debug builds, and so the tests, keep them.
        swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]),
        // Operator listener: /metrics, /api/connections, the dashboard; off the workers' rings.
        .target(name: "RelayAdmin", dependencies: [
            "RelayCore", "MPTCPSocket",
            .product(name: "FlyingFox", package: "FlyingFox"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Log lines off the workers: bounded buffers drained by a writer thread.
        .target(name: "RelayLog", dependencies: [.product(name: "Logging", package: "swift-log")]),
        // Config file (TOML) -> RelaySettings, and the nftables rules a config needs.
        .target(name: "RelayConfig", dependencies: [
            "RelayCore", "MPTCPSocket", "TunnelProtocol", "WanManager",
            .product(name: "TOMLKit", package: "TOMLKit"),
        ]),
        // Wire format of the gateway <-> aggregation server tunnel header (RFC 8803 based).
        .target(name: "TunnelProtocol", dependencies: [
            "MPTCPSocket",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .executableTarget(name: "mptcp-relay", dependencies: [
            "RelayCore", "MPTCPSocket", "RelayConfig", "TunnelProtocol", "RelayLog", "URing", "WanManager", "Netlink", "RelayAdmin", "BuildVersion",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // BEGIN mptcpize targets
        // The preload must not pull the Swift runtime (or libstdc++) into every program, so
        // swiftc's link is told to add nothing: -nostartfiles drops swiftrt.o (the only
        // reference to libswiftCore), -static-stdlib turns -lswiftCore into an archive nothing
        // is taken from, link-stubs answers -lstdc++/-lm with empty scripts, and -z defs
        // proves every symbol comes from libc. `ldd libmptcpize.so` shows libc only (tested).
        .target(
            name: "CMPTCPize",
            exclude: ["link-stubs"],
            linkerSettings: [.unsafeFlags([
                "-nostartfiles", "-static-stdlib",
                "-L", Context.packageDirectory + "/Sources/CMPTCPize/link-stubs",
                "-Xlinker", "-z", "-Xlinker", "defs",
            ])]
        ),
        // Supervisor mode (seccomp user notification) for static binaries and raw syscalls.
        .target(name: "CMPTCPizeSupervisor"),
        .executableTarget(name: "mptcpize", dependencies: [
            "CMPTCPizeSupervisor",
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
        .testTarget(name: "RelayCoreTests", dependencies: ["RelayCore", "RelayLog", "URing", "MPTCPSocket", "TunnelProtocol"]),
        .testTarget(name: "RelayAdminTests", dependencies: ["RelayAdmin", "RelayCore", "MPTCPSocket"]),
        .testTarget(name: "RelayConfigTests", dependencies: ["RelayConfig", "RelayCore", "MPTCPSocket", "TunnelProtocol"]),
        .testTarget(name: "TunnelProtocolTests", dependencies: ["TunnelProtocol"]),
        .testTarget(name: "IntegrationTests", dependencies: ["TestSupport"]),
    ]
)
