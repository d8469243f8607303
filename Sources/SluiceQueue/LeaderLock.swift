import Foundation
import SluiceRedis

/// A lock in Redis that one holder at a time keeps by renewing it: two scalers of one pool never
/// act at once, and one web replica at a time runs the archiver and the batch finalizer
/// (`LeaderService`). It lapses `ttl` after its holder stops renewing (a crash), and another
/// takes it.
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

    private static let scripts: (acquire: RedisScript, release: RedisScript) = {
        do {
            return (try RedisScript.load("leader-acquire", bundle: Bundle.module), try RedisScript.load("leader-release", bundle: Bundle.module))
        } catch {
            fatalError("SluiceQueue's leader lock scripts are missing from its bundle: \(error)")
        }
    }()

    /// Takes the lock, or renews it if this holder has it; false when another holds it.
    public func acquire() async throws -> Bool {
        try await redis.run(Self.scripts.acquire, keys: [key], arguments: [holder, ttl.milliseconds]).int == 1
    }

    /// Gives the lock up, if this holder has it.
    public func release() async throws {
        _ = try await redis.run(Self.scripts.release, keys: [key], arguments: [holder])
    }
}
