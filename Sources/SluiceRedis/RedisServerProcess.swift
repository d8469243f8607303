import Foundation
import Synchronization

/// A private `redis-server` run as a child process: for the tests, the benchmark, and the
/// embedded default of `sluice up`.
///
/// It listens on a loopback port or a unix socket under `directory`, with
/// `maxmemory-policy noeviction`, `hash-max-listpack-value 1024` and, when `appendOnly` is set,
/// AOF persistence (`appendfsync everysec`).
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
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
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
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    public func kill() async {
        guard let child = process.withLock({ $0.take() }) else { return }
        child.signal(SIGKILL)
        _ = await child.waitForExit(timeout: .seconds(5))
    }

    /// Starts the server again on the same address and directory (after `stop` or `kill`).
    public func restart() async throws {
        await stop()
        try await launch()
    }

    private func launch() async throws {
        // Two servers on one directory would share (and corrupt) one AOF: refuse, and say who is there.
        if port == nil, let running = try? await RedisClient.connect(url: url, connections: 1) {
            let info = (try? await running.send("INFO", "server").string) ?? ""
            running.close()
            let pid = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("process_id:") }
                .map { String($0.dropFirst("process_id:".count)) } ?? "?"
            throw RedisError.connectionFailed(
                "a redis-server (pid \(pid)) already serves \(url), perhaps left by an earlier run; stop it, or point redis.url at it")
        }
        var arguments = [
            "--dir", directory, "--daemonize", "no", "--save", "", "--maxmemory-policy", "noeviction",
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
        let child = try ChildProcess.spawn("redis-server", arguments: arguments)
        process.withLock { $0 = child }
        var configuration = clientConfiguration
        configuration.connectTimeout = .milliseconds(200)
        // 10 s to answer; a server that answers and is loading a large AOF gets 10 minutes.
        var deadline = ContinuousClock.now + .seconds(10)
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
                if ours && info.contains("loading:0") { return }
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
                : "redis-server at \(url) did not answer within 10 s")
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
