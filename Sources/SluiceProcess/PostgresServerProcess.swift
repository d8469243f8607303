import Foundation
import Synchronization

/// A private PostgreSQL server run as a child process, for the tests (as `RedisServerProcess` is
/// for Redis): `initdb` into `directory/data`, then `postgres` listening on a unix socket in
/// `directory` only (`listen_addresses=''`: no TCP port), with `fsync=off` (a test's data need not
/// survive a power cut), trust authentication for the one superuser `sluice`.
///
/// PostgreSQL refuses to run as root. When this process is root (CI and the dev machine), the
/// directory is given to the `postgres` user that Debian's package creates, and initdb and the
/// server run as that user (`setpriv --reuid`); root still reaches the socket. The binaries are
/// Debian's (`/usr/lib/postgresql/<version>/bin`, the newest version there), or `initdb` and
/// `postgres` in PATH. When none is found, `start` throws: a test that needs PostgreSQL fails
/// loudly instead of passing without it.
///
/// The server is tied to the thread that started it by a parent-death signal (SIGINT: a fast
/// shutdown) as the private redis-server is, so a test process that dies takes it along.
public final class PostgresServerProcess: Sendable {
    public let directory: String
    /// The user to connect as (a superuser; trust authentication on the socket).
    public let user = "sluice"
    /// The database to use: the one every new cluster has.
    public let database = "postgres"
    /// The server's process (the postmaster).
    public var pid: pid_t? { process.withLock { $0?.pid } }
    /// The socket file: `directory/.s.PGSQL.5432`.
    public var socketPath: String { "\(directory)/.s.PGSQL.5432" }
    /// The URL clients use: `postgres://sluice@/postgres?host=<directory>`.
    public var url: String { "postgres://\(user)@/\(database)?host=\(directory)" }

    private let binaries: String
    private let process = Mutex<ChildProcess?>(nil)
    private let keeper: Mutex<DispatchSemaphore?> = Mutex(nil)

    private init(directory: String, binaries: String) {
        self.directory = directory
        self.binaries = binaries
    }

    /// The directory holding `initdb` and `postgres`: Debian's newest, or PATH's; nil when none.
    public static func binaryDirectory() -> String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .compactMap { Int($0) }.sorted(by: >)
        for version in versions where FileManager.default.isExecutableFile(atPath: "\(root)/\(version)/bin/postgres") {
            return "\(root)/\(version)/bin"
        }
        return ChildProcess.pathDirectories().first {
            FileManager.default.isExecutableFile(atPath: "\($0)/initdb") && FileManager.default.isExecutableFile(atPath: "\($0)/postgres")
        }
    }

    /// Creates a cluster in `directory` (which must not hold one yet) and starts its server;
    /// returns once it accepts connections.
    public static func start(directory: String) async throws -> PostgresServerProcess {
        guard let binaries = binaryDirectory() else {
            throw PostgresServerError.notInstalled
        }
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        _ = chmod(directory, 0o700)
        let server = PostgresServerProcess(directory: directory, binaries: binaries)
        try server.giveToServerUser(directory)
        try await server.initdb()
        try await server.launch()
        return server
    }

    /// Stops the server (SIGINT: a fast shutdown, which ends sessions) and waits for it to exit.
    public func stop() async {
        guard let child = process.withLock({ $0.take() }) else { return }
        child.signal(SIGINT)
        if await child.waitForExit(timeout: .seconds(20)) == nil {
            child.signal(SIGKILL)
            _ = await child.waitForExit(timeout: .seconds(5))
        }
        keeper.withLock { $0.take() }?.signal()
    }

    /// Starts the server again on the same cluster (after `stop`), as a restart or a failover would.
    public func restart() async throws {
        await stop()
        try await launch()
    }

    /// Stops the server and removes its directory.
    public func stopAndRemove() async {
        await stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The uid and gid the server runs as: the `postgres` user when we are root; nil otherwise.
    private static func serverUser() throws -> (uid: uid_t, gid: gid_t)? {
        guard geteuid() == 0 else { return nil }
        guard let entry = getpwnam("postgres") else { throw PostgresServerError.noServerUser }
        return (entry.pointee.pw_uid, entry.pointee.pw_gid)
    }

    private func giveToServerUser(_ path: String) throws {
        guard let (uid, gid) = try Self.serverUser() else { return }
        guard chown(path, uid, gid) == 0 else {
            throw PostgresServerError.failed("chown \(path) to postgres: \(String(cString: strerror(errno)))")
        }
    }

    /// `[setpriv --reuid … --]` when the server must run as the postgres user, else nothing.
    private func asServerUser(_ command: [String], deathSignal: String? = nil) throws -> (String, [String]) {
        var prefix: [String] = []
        if let signal = deathSignal { prefix += ["--pdeathsig", signal] }
        if let (uid, gid) = try Self.serverUser() {
            prefix += ["--reuid", String(uid), "--regid", String(gid), "--clear-groups"]
        } else if prefix.isEmpty {
            return (command[0], Array(command.dropFirst()))
        }
        guard let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            if prefix.contains("--reuid") { throw PostgresServerError.failed("setpriv (util-linux) is needed to run PostgreSQL as root") }
            return (command[0], Array(command.dropFirst()))
        }
        return (setpriv, prefix + ["--"] + command)
    }

    private var logPath: String { "\(directory)/postgres.log" }

    private func initdb() async throws {
        let (executable, arguments) = try asServerUser([
            "\(binaries)/initdb", "--pgdata", "\(directory)/data", "--username", user, "--auth", "trust",
            "--encoding", "UTF8", "--locale", "C", "--no-sync",
        ])
        let child = try ChildProcess.spawn(executable, arguments: arguments, outputPath: "\(directory)/initdb.log")
        guard let status = await child.waitForExit(timeout: .seconds(120)) else {
            child.signal(SIGKILL)
            throw PostgresServerError.failed("initdb did not finish within 120 s")
        }
        guard status == 0 else { throw PostgresServerError.failed("initdb exited with status \(status): \(tail("\(directory)/initdb.log"))") }
    }

    private func launch() async throws {
        let settings = [
            "listen_addresses=", "unix_socket_directories=\(directory)", "fsync=off", "synchronous_commit=off",
            "full_page_writes=off", "max_connections=50", "shared_buffers=32MB", "logging_collector=off",
        ]
        let (executable, arguments) = try asServerUser(
            ["\(binaries)/postgres", "-D", "\(directory)/data"] + settings.flatMap { ["-c", $0] }, deathSignal: "INT")
        let child = try await spawnTied(executable, arguments)
        process.withLock { $0 = child }
        do { try await awaitReady(child) } catch {
            await stop()
            throw error
        }
    }

    /// Spawns from a thread of our own that stays blocked until `stop`: the parent-death signal
    /// belongs to the spawning thread, and the concurrency pool retires idle threads.
    private func spawnTied(_ executable: String, _ arguments: [String]) async throws -> ChildProcess {
        let release = DispatchSemaphore(value: 0)
        let logPath = self.logPath
        let spawned: Result<ChildProcess, any Error> = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let result = Result { try ChildProcess.spawn(executable, arguments: arguments, outputPath: logPath) }
                continuation.resume(returning: result)
                if case .success = result { release.wait() }
            }
        }
        let child = try spawned.get()
        keeper.withLock { $0 = release }
        return child
    }

    /// Returns once `postmaster.pid` says `ready` (its eighth line) and the socket exists.
    private func awaitReady(_ child: ChildProcess) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let status = child.terminationStatus {
                throw PostgresServerError.failed("postgres exited with status \(status): \(tail(logPath))")
            }
            if let text = try? String(contentsOfFile: "\(directory)/data/postmaster.pid", encoding: .utf8) {
                let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
                if lines.count > 7, lines[7].trimmingCharacters(in: .whitespaces) == "ready",
                    FileManager.default.fileExists(atPath: socketPath)
                {
                    return
                }
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw PostgresServerError.failed("postgres did not become ready within 60 s: \(tail(logPath))")
    }

    private func tail(_ path: String) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(3).joined(separator: " | ")
    }
}

public enum PostgresServerError: Error, Sendable, CustomStringConvertible {
    case notInstalled
    case noServerUser
    case failed(String)

    public var description: String {
        switch self {
        case .notInstalled:
            "PostgreSQL was not found (no /usr/lib/postgresql/<version>/bin/postgres, no initdb in PATH): apt-get install postgresql (make deps does)"
        case .noServerUser: "running as root, and there is no `postgres` user to run PostgreSQL as (Debian's postgresql package creates it)"
        case .failed(let why): why
        }
    }
}
