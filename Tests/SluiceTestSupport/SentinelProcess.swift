import Foundation
import SluiceProcess
import SluiceRedis

/// A Redis Sentinel (`redis-server --sentinel`: Debian's redis-server has the mode) watching the
/// primary on `primaryPort` as `master`, on a free loopback port, with a quick
/// `down-after-milliseconds` (1 s), its config and log under `directory`. For the tests of
/// Sluice through Sentinel.
public struct SentinelProcess: Sendable {
    public let port: Int
    public let child: ChildProcess
    public let directory: String

    /// Starts the sentinel and returns once it names the primary (and, when `replicas` > 0, knows
    /// that many replicas of it). `authPass` is the primary's password, if it has one.
    public static func start(
        directory: String, primaryPort: Int, master: String = "mymaster", authPass: String? = nil, replicas: Int = 0
    ) async throws -> SentinelProcess {
        let port = try RedisServerProcess.freeLoopbackPort()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let config = directory + "/sentinel.conf"
        try """
            port \(port)
            bind 127.0.0.1
            dir \(directory)
            logfile \(directory)/sentinel.log
            sentinel monitor \(master) 127.0.0.1 \(primaryPort) 1
            sentinel down-after-milliseconds \(master) 1000
            sentinel failover-timeout \(master) 10000
            sentinel parallel-syncs \(master) 1
            \(authPass.map { "sentinel auth-pass \(master) \($0)" } ?? "")

            """.write(toFile: config, atomically: true, encoding: .utf8)
        let child = try ChildProcess.spawn("redis-server", arguments: [config, "--sentinel"])
        let sentinel = SentinelProcess(port: port, child: child, directory: directory)
        let client = RedisClient(configuration: sentinel.configuration, connections: 1)
        defer { client.close() }
        let ready = await eventually(timeout: .seconds(30)) {
            let named = try? await client.send("SENTINEL", "get-master-addr-by-name", master)
            guard named?.array?.last?.string == String(primaryPort) else { return false }
            guard replicas > 0 else { return true }
            return (try? await client.send("SENTINEL", "replicas", master))?.array?.count == replicas
        }
        guard ready else {
            await sentinel.stop()
            let log = (try? String(contentsOfFile: directory + "/sentinel.log", encoding: .utf8)) ?? ""
            throw RedisError.connectionFailed("the sentinel did not name the primary: \(log.suffix(1500))")
        }
        return sentinel
    }

    /// How to reach the sentinel itself (to ask it questions, not through it).
    public var configuration: RedisConfiguration { RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port)) }

    public func stop() async {
        child.signal(SIGTERM)
        if await child.waitForExit(timeout: .seconds(5)) == nil {
            child.signal(SIGKILL)
            _ = await child.waitForExit(timeout: .seconds(5))
        }
    }
}
