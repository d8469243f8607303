import Foundation
import SluiceRedis
import Synchronization

/// A private `redis-server` run as a child process: for the tests, the benchmark, and the
/// embedded default of `sluice up`.
///
/// It listens on a loopback port or a unix socket under `directory`, with
/// `maxmemory-policy noeviction`, `hash-max-listpack-value 1024` and, when `appendOnly` is set,
/// AOF persistence (`appendfsync everysec`). Its directory is the owner's only (0700), and the
/// server runs under umask 077, so its AOF, socket, pidfile and log are the owner's only too.
///
/// Crash containment: the server writes `redis.pid` (its own pid) and this process writes
/// `redis.owner` (the pid that started it) in `directory`. A start on a unix socket finds a server
/// left behind by a starter that died (a `kill -9`'d `sluice up`): a live process that is really a
/// `redis-server` working in this very directory (`/proc/<pid>/cmdline` and `/proc/<pid>/cwd`)
/// and whose parent is no longer the pid that started it. It stops that server with SIGTERM, which
/// makes redis flush its AOF and exit, and then starts afresh on the same data. A server whose
/// starter is still its parent (another running `sluice up`) is never touched: the start is refused.
public final class RedisServerProcess: Sendable {
    /// How the private server is reached.
    public enum Listen: Sendable, Hashable {
        /// A TCP port on 127.0.0.1; nil picks a free one.
        case loopback(port: Int?)
        /// A unix socket at `directory/redis.sock`.
        case unixSocket
    }

    public let directory: String
    public let listen: Listen
    public let appendOnly: Bool
    public let extraArguments: [String]
    /// The address clients use: `redis://127.0.0.1:PORT` or `unix:///…/redis.sock`.
    public let url: String
    private let port: Int?
    private let process: Mutex<ChildProcess?>
    /// Releases the thread that spawned the server (see `spawnTied`), once the server is stopped.
    private let keeper: Mutex<DispatchSemaphore?> = Mutex(nil)

    private init(directory: String, listen: Listen, port: Int?, appendOnly: Bool, extraArguments: [String]) {
        self.directory = directory
        self.listen = listen
        self.port = port
        self.appendOnly = appendOnly
        self.extraArguments = extraArguments
        self.url = port.map { "redis://127.0.0.1:\($0)" } ?? "unix://\(directory)/redis.sock"
        self.process = Mutex(nil)
    }

    /// Starts a redis-server and returns once it answers and has loaded its data (AOF).
    public static func start(
        directory: String, listen: Listen = .loopback(port: nil), appendOnly: Bool = false,
        extraArguments: [String] = []
    ) async throws -> RedisServerProcess {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        // An existing directory keeps its mode otherwise: the AOF in it holds every job's payload.
        _ = chmod(directory, 0o700)
        guard case .loopback(let requested) = listen else {
            let server = RedisServerProcess(
                directory: directory, listen: listen, port: nil, appendOnly: appendOnly, extraArguments: extraArguments)
            try await server.launch()
            return server
        }
        // A port found free can be taken (by any client's ephemeral port) before redis-server
        // binds it; when we picked the port, pick again.
        var attempt = 0
        while true {
            attempt += 1
            let server = RedisServerProcess(
                directory: directory, listen: listen, port: try requested ?? freeLoopbackPort(),
                appendOnly: appendOnly, extraArguments: extraArguments)
            do {
                try await server.launch()
                return server
            } catch RedisError.connectionFailed(let why) where requested == nil && attempt < 5 && why.contains("in use") {
                continue
            }
        }
    }

    /// How a client reaches this server: its URL, with the password it was started with.
    public var clientConfiguration: RedisConfiguration {
        // The URL is built here from a port or a socket path, so it always parses.
        var configuration = try! RedisConfiguration(url: url)
        if let index = extraArguments.firstIndex(of: "--requirepass"), index + 1 < extraArguments.count {
            configuration.password = extraArguments[index + 1]
        }
        return configuration
    }

    /// The pid of the running server, if any.
    public var pid: pid_t? { process.withLock { $0?.pid } }

    /// Stops the server gracefully (SIGTERM, then SIGKILL after 5 s).
    public func stop() async {
        guard let child = process.withLock({ $0.take() }) else { return }
        await child.stop()
        releaseKeeper()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    public func kill() async {
        guard let child = process.withLock({ $0.take() }) else { return }
        child.signal(SIGKILL)
        _ = await child.waitForExit(timeout: .seconds(5))
        releaseKeeper()
    }

    /// Starts the server again on the same address and directory (after `stop` or `kill`).
    public func restart() async throws {
        await stop()
        try await launch()
    }

    /// redis-server's own pidfile (written at start, removed at a clean exit).
    private var pidfilePath: String { "\(directory)/redis.pid" }
    /// The pid of the process that started the server in this directory.
    private var ownerPath: String { "\(directory)/redis.owner" }

    private func launch() async throws {
        // Two servers on one directory would share (and corrupt) one AOF. One left by a starter
        // that died is stopped (it flushes its AOF) and replaced; a live one is refused.
        if port == nil { try await replaceLeftoverServer() }
        var arguments = [
            "--dir", directory, "--daemonize", "no", "--save", "", "--maxmemory-policy", "noeviction",
            "--pidfile", pidfilePath,
            "--appendonly", appendOnly ? "yes" : "no", "--appendfsync", "everysec",
            "--logfile", "\(directory)/redis.log", "--protected-mode", "yes",
            // Job hashes with payloads up to 1 KB stay listpack-encoded: about half the memory.
            "--hash-max-listpack-value", "1024",
        ]
        if let port {
            arguments += ["--port", String(port), "--bind", "127.0.0.1"]
        } else {
            arguments += ["--port", "0", "--unixsocket", "\(directory)/redis.sock", "--unixsocketperm", "700"]
        }
        arguments += extraArguments
        // umask 077 (through sh, as posix_spawn cannot set one): the AOF, log and pidfile are 0600.
        let child = try await spawnTied(["-c", #"umask 077 && exec redis-server "$@""#, "redis-server"] + arguments)
        try? "\(getpid())\n".write(toFile: ownerPath, atomically: true, encoding: .utf8)
        process.withLock { $0 = child }
        do { try await awaitReady(child) } catch {
            _ = process.withLock { $0.take() }
            releaseKeeper()
            throw error
        }
    }

    /// Starts `sh arguments` with, on Linux, a parent-death signal (`setpriv --pdeathsig TERM`):
    /// when this process dies, even by SIGKILL, the kernel sends the server SIGTERM, and redis
    /// flushes its AOF and exits. The kernel ties that signal to the *thread* that spawned, not the
    /// process, and the concurrency pool retires idle threads, so the spawn is done from a thread
    /// of our own that waits, blocked, until `stop` or `kill` releases it. Without setpriv the
    /// server is started plainly (a later start still replaces a leftover one).
    private func spawnTied(_ arguments: [String]) async throws -> ChildProcess {
        guard let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return try ChildProcess.spawn("sh", arguments: arguments)
        }
        let release = DispatchSemaphore(value: 0)
        let spawned: Result<ChildProcess, any Error> = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let result = Result { try ChildProcess.spawn(setpriv, arguments: ["--pdeathsig", "TERM", "sh"] + arguments) }
                continuation.resume(returning: result)
                if case .success = result { release.wait() }
            }
        }
        let child = try spawned.get()
        keeper.withLock { $0 = release }
        return child
    }

    private func releaseKeeper() {
        keeper.withLock { $0.take() }?.signal()
    }

    /// Returns once the just-started server answers and has loaded its data; throws if it exits
    /// or does not answer in time.
    private func awaitReady(_ child: ChildProcess) async throws {
        var configuration = clientConfiguration
        configuration.connectTimeout = .milliseconds(200)
        // 30 s to answer (a CPU-starved machine took over 10 s); a server that answers and is
        // loading a large AOF gets 10 minutes.
        var deadline = ContinuousClock.now + .seconds(30)
        var loadingSeen = false
        while ContinuousClock.now < deadline {
            if let status = child.terminationStatus {
                let log = (try? String(contentsOfFile: "\(directory)/redis.log", encoding: .utf8)) ?? ""
                throw RedisError.connectionFailed(
                    "redis-server exited with status \(status): \(log.split(separator: "\n").suffix(3).joined(separator: " | "))")
            }
            if let client = try? await RedisClient.connect(configuration: configuration, connections: 1) {
                // PING answers while an AOF is still loading; ready means loaded. And it must be
                // our server: on a TCP port just freed (a restart), another may have started.
                let info = (try? await client.send("INFO", "all").string) ?? ""
                client.close()
                let ours = info.contains("process_id:\(child.pid)\r")
                // The whole line: "async_loading:0" (Redis 7) is there while an AOF still loads.
                if ours && info.contains("\nloading:0\r") { return }
                if !ours {
                    try await Task.sleep(for: .milliseconds(20))
                    continue  // ours will exit (its port is taken) and say so above
                }
                if !loadingSeen {
                    loadingSeen = true
                    deadline = ContinuousClock.now + .seconds(600)
                }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        await child.stop()
        throw RedisError.connectionFailed(
            loadingSeen ? "redis-server at \(url) was still loading its data after 10 minutes"
                : "redis-server at \(url) did not answer within 30 s")
    }

    /// Finds a redis-server already running on this directory (named by the pidfile, or answering
    /// on the socket). If its starter is gone, stops it gracefully (SIGTERM: redis flushes its AOF)
    /// and returns once it has exited; if its starter still runs it, or it cannot be shown to be a
    /// redis-server of this directory, throws.
    private func replaceLeftoverServer() async throws {
        var candidates: [pid_t] = []
        if let text = try? String(contentsOfFile: pidfilePath, encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 1
        {
            candidates.append(pid)
        }
        var answering: String?
        if let running = try? await RedisClient.connect(url: url, connections: 1) {
            let info = (try? await running.send("INFO", "server").string) ?? ""
            running.close()
            let pid = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }
                .map { String($0.dropFirst("process_id:".count)).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "?"
            answering = pid
            if let number = pid_t(pid), number > 1, !candidates.contains(number) { candidates.append(number) }
        }
        let owner = (try? String(contentsOfFile: ownerPath, encoding: .utf8))
            .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        var replaced = false
        for pid in candidates where LeftoverProcess.isRedisServer(pid, workingIn: directory) {
            let parent = LeftoverProcess.parent(of: pid)
            // Still the child of whoever started it (owner unknown: of anything but init): in use.
            if let parent, parent == owner || (owner == nil && parent != 1) {
                throw RedisError.connectionFailed(
                    "a redis-server (pid \(pid)) already serves \(url) for a running process (pid \(parent)); stop that, or point redis.url elsewhere")
            }
            try await LeftoverProcess.stop(pid)
            replaced = true
        }
        if let answering, !replaced {
            throw RedisError.connectionFailed(
                "a redis-server (pid \(answering)) already serves \(url), and it is not one this directory's pidfile names; stop it, or point redis.url at it")
        }
        if replaced { try? FileManager.default.removeItem(atPath: "\(directory)/redis.sock") }
    }

    /// A TCP port on 127.0.0.1 that nothing listens on right now.
    public static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RedisError.connectionFailed("socket(): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw RedisError.connectionFailed("bind(): \(String(cString: strerror(errno)))") }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// What `/proc` says about a process that is not our child: whether it is a redis-server working
/// in a given directory, who its parent is, and a graceful stop that waits for it to exit.
enum LeftoverProcess {
    /// Whether `pid` is alive, runs redis-server (its title, `redis-server unixsocket:…`, as
    /// redis sets it) and has `directory` as its working directory (redis-server changes into
    /// its `--dir`). Both must hold before Sluice signals a process it did not start.
    static func isRedisServer(_ pid: pid_t, workingIn directory: String) -> Bool {
        guard pid > 1, isAlive(pid),
            let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
            let title = String(decoding: cmdline, as: UTF8.self).split(whereSeparator: { $0 == "\0" || $0 == " " }).first,
            title.split(separator: "/").last == "redis-server",
            let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")
        else { return false }
        return realPath(cwd) == realPath(directory)
    }

    /// The parent pid (`/proc/<pid>/stat`, the field after the parenthesised name).
    static func parent(of pid: pid_t) -> pid_t? {
        guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat").map({ String(decoding: $0, as: UTF8.self) }),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) : nil
    }

    /// Alive and not a zombie.
    static func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat").map({ String(decoding: $0, as: UTF8.self) }),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
    }

    /// SIGTERM (redis flushes its AOF and exits), waiting up to a minute; then SIGKILL (with
    /// `appendfsync everysec`, at most the last second of writes can be lost).
    static func stop(_ pid: pid_t) async throws {
        kill(pid, SIGTERM)
        for phase in 0..<2 {
            let deadline = ContinuousClock.now + (phase == 0 ? .seconds(60) : .seconds(10))
            while ContinuousClock.now < deadline {
                if !isAlive(pid) { return }
                try await Task.sleep(for: .milliseconds(20))
            }
            kill(pid, SIGKILL)
        }
        throw RedisError.connectionFailed("the redis-server left behind (pid \(pid)) would not stop")
    }

    private static func realPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
