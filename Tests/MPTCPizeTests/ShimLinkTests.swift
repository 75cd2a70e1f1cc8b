import Testing

/// The preload is loaded into every program it wraps: it must need nothing but libc (libdl at
/// most), or it drags the Swift runtime and libstdc++ into them (issue 9).
@Suite struct ShimLinkTests {
    static let allowed = ["linux-vdso.so.1", "libc.so.6", "libdl.so.2", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"]

    @Test func shimNeedsLibcOnly() throws {
        try Build.require()
        let ldd = try runChecked(["ldd", Build.library]).stdout
        let names = ldd.split(separator: "\n").compactMap { line -> String? in
            let first = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).first.map(String.init) ?? ""
            return first.isEmpty ? nil : String(first.split(separator: "/").last ?? "")
        }
        #expect(!names.isEmpty, "ldd printed nothing: \(ldd)")
        #expect(names.allSatisfy { Self.allowed.contains($0) }, "libmptcpize.so needs more than libc:\n\(ldd)")
        #expect(!ldd.contains("swift"), "\(ldd)")

        let dynamic = try runChecked(["readelf", "-d", Build.library]).stdout
        let needed = dynamic.split(separator: "\n").filter { $0.contains("(NEEDED)") }
        #expect(needed.allSatisfy { $0.contains("[libc.so.6]") || $0.contains("[libdl.so.2]") }, "\(needed)")
        #expect(!dynamic.contains("swift"), "a Swift runpath is left in the shim:\n\(dynamic)")
    }

    /// Loaded into a program whose library path cannot reach the Swift toolchain, it still
    /// converts: nothing it needs lives beside the toolchain.
    @Test func shimWorksWithoutTheToolchain() throws {
        try Build.require()
        let outcome = try NetnsPair.with { pair in
            try run(NetnsPair.exec(pair.client, env: ["LD_PRELOAD": Build.library, "LD_LIBRARY_PATH": "/nonexistent", "MPTCPIZE_DEBUG": "1"],
                                   ["/usr/bin/python3", "-c", "import socket; print(socket.socket().getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))"]))
        }
        #expect(outcome.status == 0, "\(outcome.summary)")
        #expect(outcome.stdout == "262\n", "\(outcome.stdout) \(outcome.stderr)")
    }

    /// Only the interposed libc functions leave the library; helpers stay hidden.
    @Test func shimExportsOnlyInterposedFunctions() throws {
        try Build.require()
        let symbols = try runChecked(["nm", "-D", "--defined-only", Build.library]).stdout
        let functions = symbols.split(separator: "\n").compactMap { line -> String? in
            let parts = line.split(separator: " ")
            return parts.count == 3 && parts[1] == "T" ? String(parts[2]) : nil
        }
        #expect(functions.allSatisfy { !$0.hasPrefix("mz_") }, "\(functions)")
        #expect(functions.contains("socket") && functions.contains("connect"), "\(functions)")
    }
}
