import Foundation
import SluiceRedis

/// A lock in Redis that one holder at a time keeps by renewing it: two scalers of one pool never
/// act at once. It lapses `ttl` after its holder stops renewing (a crash), and another takes it.
public struct LeaderLock: Sendable {
    public let redis: RedisClient
    public let key: String
    public let holder: String
    public let ttl: Duration

    public init(redis: RedisClient, key: String, holder: String = "\(ProcessInfo.processInfo.hostName):\(getpid()):\(UUID().uuidString.prefix(8))", ttl: Duration = .seconds(5)) {
        self.redis = redis
        self.key = key
        self.holder = holder
        self.ttl = ttl
    }

    private static let acquireScript = RedisScript(
        name: "leader-acquire",
        source: """
            local current = redis.call('GET', KEYS[1])
            if current == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
            if current then return 0 end
            redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
            return 1
            """)

    private static let releaseScript = RedisScript(
        name: "leader-release",
        source: "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0")

    /// Takes the lock, or renews it if this holder has it; false when another holds it.
    public func acquire() async throws -> Bool {
        try await redis.run(Self.acquireScript, keys: [key], arguments: [holder, ttl.milliseconds]).int == 1
    }

    /// Gives the lock up, if this holder has it.
    public func release() async throws {
        _ = try await redis.run(Self.releaseScript, keys: [key], arguments: [holder])
    }
}
