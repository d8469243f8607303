import Foundation
import Synchronization

/// A child process started with `posix_spawn` and a clean signal mask.
///
/// Foundation's `Process`, started from async code, passes on a blocked SIGTERM, so the child
/// ignores `terminate()`. Here the mask is emptied and the usual signals are reset to their
/// defaults, so SIGTERM stops the child as it should.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    public let executable: String
    private let exitStatus = Mutex<Int32?>(nil)

    private init(pid: pid_t, executable: String) {
        self.pid = pid
        self.executable = executable
    }

    /// Starts `executable` (looked up in PATH) with `arguments`; its stdout and stderr go to
    /// `outputPath` (appended) or to /dev/null.
    public static func spawn(
        _ executable: String, arguments: [String], outputPath: String? = nil, environment: [String: String]? = nil
    ) throws -> ChildProcess {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let output = outputPath ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of ours: without this a child (a redis-server, a `sluice work`) held on
        // to every descriptor not marked close-on-exec, sockets included, so a connection this
        // process closed stayed open for its peer (no FIN) while the child lived, and a child
        // kept the build lock's file open.
        Self.closeFrom3(&actions)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let envStrings = environment.map { env in env.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer { envStrings?.forEach { free($0) } }

        var pid = pid_t()
        let status: Int32 =
            if let envStrings {
                posix_spawnp(&pid, executable, &actions, &attributes, argv, envStrings)
            } else {
                posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
            }
        guard status == 0 else {
            throw ChildProcessError.spawnFailed(executable: executable, reason: String(cString: strerror(status)))
        }
        return ChildProcess(pid: pid, executable: executable)
    }

    /// Sends `signal` (SIGTERM by default) to the child.
    public func signal(_ signal: Int32 = SIGTERM) {
        guard !hasExited else { return }
        kill(pid, signal)
    }

    /// Whether the child has exited (reaping it if so).
    public var hasExited: Bool { reap(blocking: false) != nil }

    /// The exit status once the child has exited: the code, or 128 + the signal number.
    public var terminationStatus: Int32? { reap(blocking: false) }

    /// Waits up to `timeout` for the child to exit; returns its status, or nil if still running.
    public func waitForExit(timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = reap(blocking: false) { return status }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return reap(blocking: false)
    }

    /// SIGTERM, then SIGKILL if the child has not exited within `grace`. Returns the status.
    @discardableResult
    public func stop(grace: Duration = .seconds(5)) async -> Int32? {
        signal(SIGTERM)
        if let status = await waitForExit(timeout: grace) { return status }
        signal(SIGKILL)
        return await waitForExit(timeout: .seconds(5))
    }

    private func reap(blocking: Bool) -> Int32? {
        exitStatus.withLock { status in
            if let status { return status }
            var raw: Int32 = 0
            let result = waitpid(pid, &raw, blocking ? 0 : WNOHANG)
            guard result == pid else { return nil }
            let low = raw & 0x7F
            status = low == 0 ? (raw >> 8) & 0xFF : 128 + low
            return status
        }
    }
}

/// Why a child process could not be started.
public enum ChildProcessError: Error, Sendable, CustomStringConvertible {
    case spawnFailed(executable: String, reason: String)

    public var description: String {
        switch self {
        case .spawnFailed(let executable, let reason): "cannot start \(executable): \(reason)"
        }
    }
}

extension ChildProcess {
    /// `posix_spawn_file_actions_addclosefrom_np(actions, 3)` (glibc 2.34+): the child starts
    /// with only its standard input, output and error. Looked up at run time: Swift's Glibc
    /// module does not declare it.
    static func closeFrom3(_ actions: inout posix_spawn_file_actions_t) {
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "posix_spawn_file_actions_addclosefrom_np") else { return }
        _ = unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, 3)
    }
}

extension ChildProcess {
    /// The folders of `PATH` (`/usr/bin:/bin` when it is unset), in order.
    public static func pathDirectories() -> [String] {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
    }

    /// The first executable `name` on `PATH`; nil when there is none.
    public static func onPath(_ name: String) -> String? {
        pathDirectories().map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
