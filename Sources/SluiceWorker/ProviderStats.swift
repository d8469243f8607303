import SluiceCore
import SluiceQueue
import SluiceRedis
import Synchronization

/// Provider call statistics shared by every worker process through Redis, for /metrics: a
/// latency histogram and counts of calls and 429s per provider, in `sluice:{p:<provider>}:stats`
/// (fields `le:<bucket>`, `sum_ms`, `count`, `429`). Each process adds up its calls locally and
/// writes them once a second (`flush`), one pipelined HINCRBY per field.
public final class ProviderStats: Sendable {
    /// The histogram's upper bounds, in seconds (and +Inf).
    public static let buckets: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]

    public let redis: RedisClient
    private let pending = Mutex<[String: [String: Int]]>([:])

    public init(redis: RedisClient) { self.redis = redis }

    static func key(_ provider: String) -> String { KeyLayout.providerPrefix(provider) + "stats" }

    /// Counts one call: its latency, and whether the provider answered 429.
    public func record(provider: String, latency: Duration, rateLimited: Bool) {
        let seconds = latency.seconds
        let bucket = Self.buckets.first { seconds <= $0 }.map { "le:" + Self.label($0) } ?? "le:+Inf"
        pending.withLock { all in
            var fields = all[provider, default: [:]]
            fields[bucket, default: 0] += 1
            fields["sum_ms", default: 0] += Int(latency.milliseconds)
            fields["count", default: 0] += 1
            if rateLimited { fields["429", default: 0] += 1 }
            all[provider] = fields
        }
    }

    /// Writes what was counted since the last flush.
    public func flush() async throws {
        let taken = pending.withLock { all in
            defer { all = [:] }
            return all
        }
        var commands: [RedisCommand] = []
        for (provider, fields) in taken {
            for (field, value) in fields { commands.append(RedisCommand("HINCRBY", Self.key(provider), field, value)) }
        }
        if !commands.isEmpty { _ = try await redis.pipeline(commands) }
    }

    /// One provider's figures, as every process has written them.
    public struct Snapshot: Sendable, Hashable {
        /// Cumulative counts per upper bound (seconds), in order, then +Inf.
        public var cumulative: [(le: String, count: Int)]
        public var sumSeconds: Double
        public var count: Int
        public var rateLimited: Int

        public static func == (lhs: Snapshot, rhs: Snapshot) -> Bool {
            lhs.count == rhs.count && lhs.rateLimited == rhs.rateLimited && lhs.sumSeconds == rhs.sumSeconds
                && lhs.cumulative.map(\.count) == rhs.cumulative.map(\.count)
        }
        public func hash(into hasher: inout Hasher) { hasher.combine(count) }
    }

    public static func read(_ redis: RedisClient, provider: String) async throws -> Snapshot {
        let flat = try await redis.send("HGETALL", key(provider)).array ?? []
        var fields: [String: Int] = [:]
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            if let name = flat[index].string, let value = flat[index + 1].string.flatMap({ Int($0) }) { fields[name] = value }
        }
        var running = 0
        var cumulative: [(le: String, count: Int)] = []
        for bound in buckets.map(label) + ["+Inf"] {
            running += fields["le:" + bound] ?? 0
            cumulative.append((bound, running))
        }
        return Snapshot(
            cumulative: cumulative, sumSeconds: Double(fields["sum_ms"] ?? 0) / 1000, count: fields["count"] ?? 0,
            rateLimited: fields["429"] ?? 0)
    }

    static func label(_ bound: Double) -> String {
        bound == bound.rounded() ? String(Int(bound)) : String(bound)
    }
}
