import Foundation
import Testing

@Suite struct RunCommandTests {
    @Test func exitStatusPassesThrough() throws {
        try Build.require()
        #expect(try run([Build.cli, "run", "sh", "-c", "exit 7"]).status == 7)
        #expect(try run([Build.cli, "run", "true"]).status == 0)
        let missing = try run([Build.cli, "run", "/nonexistent/program"])
        #expect(missing.status == 127)
        #expect(missing.stderr.contains("cannot run '/nonexistent/program'"), "\(missing.stderr)")
    }

    @Test func preloadIsAppendedAndOptionsBecomeEnvironment() throws {
        try Build.require()
        let other = "/lib/x86_64-linux-gnu/libm.so.6"
        let outcome = try runChecked([Build.cli, "run", "-d", "--scope", "listen", "--exclude-ports", "5432",
                                      "sh", "-c", "echo $LD_PRELOAD; echo $MPTCPIZE_DEBUG $MPTCPIZE_SCOPE $MPTCPIZE_EXCLUDE_PORTS"],
                                     environment: ["LD_PRELOAD": other])
        let library = URL(fileURLWithPath: Build.library).resolvingSymlinksInPath().path
        #expect(outcome.stdout == "\(other):\(library)\n1 listen 5432\n", "\(outcome.stdout)")
    }

    @Test func badPortListIsRejectedBeforeRunning() throws {
        try Build.require()
        let outcome = try run([Build.cli, "run", "--ports", "80,70000", "true"])
        #expect(outcome.status != 0)
        #expect(outcome.stderr.contains("is not a list of ports"), "\(outcome.stderr)")
    }
}

/// enable/disable against a systemd-style directory: no running systemd needed.
@Suite struct UnitCommandTests {
    @Test func enableWritesDropInAndDisableRemovesIt() throws {
        try Build.require()
        let dir = try ScratchDir()
        defer { dir.remove() }
        let unit = try dir.write("demo.service", "[Service]\nExecStart=/usr/bin/python3 -m http.server\n")
        let unitHash = try sha256(ofFile: unit)
        let dropIn = dir.file("demo.service.d/mptcpize.conf")

        let enabled = try runChecked([Build.cli, "enable", "--unit-dir", dir.path, "--no-reload",
                                      "--scope", "listen", "--ports", "80,443", "demo"])
        #expect(enabled.stdout.contains("Wrote \(dropIn)"), "\(enabled.stdout)")
        let text = try String(contentsOfFile: dropIn, encoding: .utf8)
        let library = URL(fileURLWithPath: Build.library).resolvingSymlinksInPath().path
        let environment = text.split(separator: "\n").filter { $0.hasPrefix("Environment=") }
        #expect(text.contains("[Service]\n"))
        #expect(environment == [
            "Environment=\"LD_PRELOAD=\(library)\"",
            "Environment=\"MPTCPIZE_SCOPE=listen\"",
            "Environment=\"MPTCPIZE_PORTS=80,443\"",
            "Environment=\"GODEBUG=multipathtcp=1\"",
        ], "\(text)")
        #expect(try sha256(ofFile: unit) == unitHash, "the unit file itself must not change")

        let disabled = try runChecked([Build.cli, "disable", "--no-reload", "demo.service"],
                                      environment: ["MPTCPIZE_SYSTEMD_DIR": dir.path])
        #expect(disabled.stdout.contains("Removed \(dropIn)"), "\(disabled.stdout)")
        #expect(!FileManager.default.fileExists(atPath: dropIn))
        #expect(!FileManager.default.fileExists(atPath: dir.file("demo.service.d")), "empty drop-in folder left behind")
        #expect(try sha256(ofFile: unit) == unitHash)

        let again = try runChecked([Build.cli, "disable", "--unit-dir", dir.path, "--no-reload", "demo"])
        #expect(again.stdout.contains("nothing to do"), "\(again.stdout)")
    }

    @Test func disableKeepsOtherDropIns() throws {
        try Build.require()
        let dir = try ScratchDir()
        defer { dir.remove() }
        try runChecked([Build.cli, "enable", "--unit-dir", dir.path, "--no-reload", "web"])
        let other = try dir.write("web.service.d/limits.conf", "[Service]\nLimitNOFILE=65536\n")
        try runChecked([Build.cli, "disable", "--unit-dir", dir.path, "--no-reload", "web"])
        #expect(FileManager.default.fileExists(atPath: other))
        #expect(!FileManager.default.fileExists(atPath: dir.file("web.service.d/mptcpize.conf")))
    }

    /// --seccomp wraps the unit's own command lines (prefixes kept) in `mptcpize run --seccomp`.
    @Test func enableSeccompWrapsExecStart() throws {
        try Build.require()
        let dir = try ScratchDir()
        defer { dir.remove() }
        _ = try dir.write("static.service", "[Service]\nExecStart=-/usr/local/bin/server --port 80\n")
        try runChecked([Build.cli, "enable", "--seccomp", "--unit-dir", dir.path, "--no-reload", "static"])
        let text = try String(contentsOfFile: dir.file("static.service.d/mptcpize.conf"), encoding: .utf8)
        let cli = URL(fileURLWithPath: Build.cli).resolvingSymlinksInPath().path
        #expect(text.contains("\nExecStart=\nExecStart=-\(cli) run --seccomp /usr/local/bin/server --port 80\n"), "\(text)")
        #expect(!text.contains("LD_PRELOAD"), "\(text)")

        _ = try dir.write("renamed.service", "[Service]\nExecStart=@/usr/bin/server srv\n")
        let refused = try run([Build.cli, "enable", "--seccomp", "--unit-dir", dir.path, "--no-reload", "renamed"])
        #expect(refused.status != 0 && refused.stderr.contains("@ prefix"), "\(refused.summary)")
    }

    @Test func socketUnitsAreRefusedWithAPointer() throws {
        try Build.require()
        let dir = try ScratchDir()
        defer { dir.remove() }
        let outcome = try run([Build.cli, "enable", "--unit-dir", dir.path, "--no-reload", "web.socket"])
        #expect(outcome.status != 0)
        #expect(outcome.stderr.contains("SocketProtocol=mptcp"), "\(outcome.stderr)")
    }
}

/// Go programs are reached through GODEBUG, added to the user's own settings (issue 9).
@Suite struct GoDebugTests {
    @Test(arguments: [
        (nil, "multipathtcp=1"),
        ("http2client=0", "http2client=0,multipathtcp=1"),
        ("multipathtcp=0,http2client=0", "multipathtcp=0,http2client=0"),  // the user's choice stands
    ] as [(String?, String)])
    func runAddsMultipathTCP(_ existing: String?, _ expected: String) throws {
        try Build.require()
        let outcome = try runChecked(["env"] + (existing == nil ? ["-u", "GODEBUG"] : ["GODEBUG=\(existing!)"])
                                     + [Build.cli, "run", "sh", "-c", "echo \"$GODEBUG\""])
        #expect(outcome.stdout == expected + "\n")
    }

    @Test func enableKeepsTheUnitsGODEBUG() throws {
        try Build.require()
        let dir = try ScratchDir()
        defer { dir.remove() }
        _ = try dir.write("goapp.service", "[Service]\nEnvironment=\"GODEBUG=http2server=0\"\nExecStart=/usr/local/bin/goapp\n")
        try runChecked([Build.cli, "enable", "--unit-dir", dir.path, "--no-reload", "goapp"])
        let text = try String(contentsOfFile: dir.file("goapp.service.d/mptcpize.conf"), encoding: .utf8)
        #expect(text.contains("Environment=\"GODEBUG=http2server=0,multipathtcp=1\"\n"), "\(text)")
    }
}

@Suite struct CheckCommandTests {
    @Test(arguments: [true, false])
    func checkTellsWhetherMPTCPWorks(_ enabled: Bool) throws {
        try Build.require()
        let outcome = try NetnsPair.with(mptcpEnabled: enabled) { pair in
            try run(NetnsPair.exec(pair.client, [Build.cli, "check"]))
        }
        #expect(outcome.status == (enabled ? 0 : 1), "\(outcome.stdout)\(outcome.stderr)")
        #expect(outcome.stdout.contains("net.mptcp.enabled:    \(enabled ? 1 : 0)"), "\(outcome.stdout)")
        #expect(outcome.stdout.contains("path manager:"))
        #expect(outcome.stdout.contains("limits:"))
        // The supervisor tests need user notification, so where they pass, check must say so.
        #expect(outcome.stdout.contains("seccomp supervisor:   available"), "\(outcome.stdout)")
        let hasHook = try run(["grep", "-qw", "update_socket_protocol", "/proc/kallsyms"]).status == 0
        #expect(outcome.stdout.contains(hasHook ? "BPF hook:             update_socket_protocol exists" : "BPF hook:             no update_socket_protocol"), "\(outcome.stdout)")
        #expect(outcome.stdout.contains(enabled ? "IPv4 MPTCP socket:    created" : "IPv4 MPTCP socket:    refused"), "\(outcome.stdout)")
        #expect(outcome.stdout.contains(enabled ? "MPTCP works here" : "MPTCP does not work here"), "\(outcome.stdout)")
    }
}
