#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Starts children with posix_spawn directly instead of Foundation.Process: on Linux, Process
/// hands its children the blocked-signal mask of the thread that spawned them (nearly all
/// signals blocked), so a SIGTERM to a server or to the relay would never arrive. Here each
/// child gets an empty mask, default handlers, and a process group of its own (so a stray
/// forked helper can be killed with the group).
enum Spawn {
    struct Redirect {
        var stdin: String = "/dev/null"
        var stdout: String
        var stderr: String?  // nil: same file as stdout
        var append = false
    }

    static func start(_ args: [String], _ io: Redirect) throws -> pid_t {
        precondition(!args.isEmpty, "empty command")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let outFlags = O_WRONLY | O_CREAT | (io.append ? O_APPEND : O_TRUNC)
        posix_spawn_file_actions_addopen(&actions, 0, io.stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, io.stdout, outFlags, 0o644)
        if let err = io.stderr {
            posix_spawn_file_actions_addopen(&actions, 2, err, outFlags, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }

        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attr, &empty)
        posix_spawnattr_setsigdefault(&attr, &all)
        posix_spawnattr_setpgroup(&attr, 0)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, args[0], &actions, &attr, argv, environ)
        guard rc == 0 else {
            throw ProcError("cannot start `\(args.joined(separator: " "))`: \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Non-blocking reap: the exit status (128+signal when killed) once it has exited.
    static func poll(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        guard r == pid else { return nil }
        return decode(status)
    }

    /// Blocking reap, for deinit paths that cannot await.
    static func waitBlocking(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return decode(status)
    }

    private static func decode(_ status: Int32) -> Int32 {
        let sig = status & 0x7f
        return sig == 0 ? (status >> 8) & 0xff : 128 + sig
    }
}
