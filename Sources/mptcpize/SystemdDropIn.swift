#if canImport(Glibc)
import Glibc
#endif

/// The drop-in `UNIT.d/mptcpize.conf` that preloads the shim into a service: the vendor unit
/// file stays untouched, and removing the drop-in restores the service exactly.
struct SystemdDropIn {
    static let defaultDirectory = "/etc/systemd/system"
    static let fileName = "mptcpize.conf"

    let unit: String
    let directory: String

    var dropInDirectory: String { "\(directory)/\(unit).d" }
    var path: String { "\(dropInDirectory)/\(Self.fileName)" }

    /// systemctl's rule: a name without a type suffix means a service.
    /// The unit file and its other drop-ins, where they can be found: in `directory`, and for
    /// the default directory also where packages install units.
    func unitFiles() -> [String] {
        var dirs = [directory]
        if directory == Self.defaultDirectory { dirs = ["/lib/systemd/system", "/usr/lib/systemd/system", directory] }
        var files: [String] = []
        for dir in dirs {
            files.append("\(dir)/\(unit)")
            guard let listing = opendir("\(dir)/\(unit).d") else { continue }
            var names: [String] = []
            while let entry = readdir(listing) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
                if name.hasSuffix(".conf") && name != Self.fileName { names.append(name) }
            }
            closedir(listing)
            files += names.sorted().map { "\(dir)/\(unit).d/\($0)" }
        }
        return files
    }

    static func normalize(_ name: String) throws -> String {
        guard !name.isEmpty, !name.contains("/"), !name.hasPrefix(".") else {
            throw CLIError("'\(name)' is not a unit name; give one like nginx or nginx.service")
        }
        let unit = name.contains(".") ? name : name + ".service"
        guard unit.hasSuffix(".service") else {
            throw CLIError("""
                \(unit) is not a service: only a service's own process can be preloaded. For a \
                socket-activated service, systemd creates the listening socket itself; set \
                SocketProtocol=mptcp in the .socket unit instead (see systemd.socket(5)).
                """)
        }
        return unit
    }

    static func contents(library: String, environment: [(String, String)]) -> String {
        var text = """
            # Written by `mptcpize enable`; `mptcpize disable` removes it.
            # Preloads libmptcpize.so so that the service's TCP sockets are MPTCP sockets;
            # where the kernel refuses MPTCP they stay TCP. This replaces any LD_PRELOAD the
            # unit sets itself (systemd does not append to variables).
            [Service]

            """
        for (name, value) in [("LD_PRELOAD", library)] + environment {
            text += "Environment=\"\(name)=\(value)\"\n"
        }
        return text
    }

    /// The supervisor variant: the unit's command lines wrapped in `mptcpize run --seccomp`.
    static func supervisedContents(execStart: [String], environment: [(String, String)]) -> String {
        var text = """
            # Written by `mptcpize enable --seccomp`; `mptcpize disable` removes it.
            # Runs the service under the mptcpize seccomp supervisor, which creates its TCP
            # sockets as MPTCP (static binaries included); where the kernel refuses MPTCP they
            # stay TCP. The ExecStart= lines repeat the unit's own, wrapped.
            [Service]

            """
        for (name, value) in environment {
            text += "Environment=\"\(name)=\(value)\"\n"
        }
        for line in execStart { text += line + "\n" }
        return text
    }

    func write(_ text: String) throws {
        if mkdir(dropInDirectory, 0o755) != 0 && errno != EEXIST {
            throw CLIError("cannot create \(dropInDirectory): \(String(cString: strerror(errno)))")
        }
        // Written beside and renamed, so systemd never reads half a file.
        let temporary = path + ".tmp"
        guard let file = fopen(temporary, "w") else {
            throw CLIError("cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        let bytes = Array(text.utf8)
        let written = fwrite(bytes, 1, bytes.count, file)
        let closed = fclose(file)
        guard written == bytes.count, closed == 0, chmod(temporary, 0o644) == 0, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw CLIError("cannot write \(path): \(reason)")
        }
    }

    /// Returns false when there was nothing to remove.
    func remove() throws -> Bool {
        if unlink(path) != 0 {
            if errno == ENOENT { return false }
            throw CLIError("cannot remove \(path): \(String(cString: strerror(errno)))")
        }
        rmdir(dropInDirectory)  // only if now empty; other drop-ins stay
        return true
    }
}

/// `systemctl daemon-reload`, skipped with a plain explanation where it cannot apply.
enum SystemdReload {
    static func perform(skip: Bool) throws -> String {
        if skip { return "Not reloading systemd (--no-reload); run `systemctl daemon-reload` to apply." }
        guard Shell.isInstalled("systemctl") else {
            return "systemctl not found; the drop-in applies once systemd reloads its units."
        }
        guard access("/run/systemd/system", F_OK) == 0 else {
            return "systemd is not running here; the drop-in applies when it next loads its units."
        }
        let result = Shell.run("systemctl daemon-reload")
        guard result.status == 0 else {
            throw CLIError("the drop-in was changed but `systemctl daemon-reload` failed: \(result.output)")
        }
        return "Reloaded systemd."
    }
}
