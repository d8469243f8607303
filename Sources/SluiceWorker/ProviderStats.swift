import SluiceCore
import SluiceQueue
import SluiceRedis
import Synchronization

/// Provider call statistics shared by every worker process through Redis, for /metrics: a
/// latency histogram and counts of calls and 429s per provider (`ProviderCallStats` describes
/// the hash; `ProviderStateReader` reads it). Each process adds up its calls locally and writes
/// them once a second (`flush`), one pipelined HINCRBY per field. A failed call is also kept for
/// the provider's last errors (`ProviderErrors`), written in the same pipeline: only failures
/// add to it, so a successful call costs nothing more.
public final class ProviderStats: Sendable {
    public let redis: RedisClient
    private let pending = Mutex<[String: [String: Int]]>([:])
    /// Failed calls not yet written, per provider (at most `ProviderErrors.kept` each).
    private let errors = Mutex<[String: [ProviderErrors.Entry]]>([:])
    /// Per lane, the calls' latencies and outcomes for routing and canaries, flushed with these.
    public let lanes: LaneCallRecorder

    public init(redis: RedisClient) {
        self.redis = redis
        lanes = LaneCallRecorder(redis: redis)
    }

    /// Counts one call: its latency, and whether the provider answered 429.
    public func record(provider: String, latency: Duration, rateLimited: Bool) {
        let bucket = ProviderCallStats.bucketField(latency)
        let milliseconds = Int(latency.milliseconds)
        pending.withLock { all in
            // In place (a copy out and back would copy the provider's fields on every call).
            all[provider, default: [:]].count(bucket, milliseconds: milliseconds, rateLimited: rateLimited)
        }
    }

    /// Keeps one failed call for the provider's last errors (written at the next flush).
    public func recordError(provider: String, _ entry: ProviderErrors.Entry) {
        errors.withLock { all in
            all[provider, default: []].append(entry)
            if all[provider]!.count > ProviderErrors.kept { all[provider]!.removeFirst() }
        }
    }

    /// Writes what was counted since the last flush.
    public func flush() async throws {
        let taken = pending.withLock { all in
            defer { all = [:] }
            return all
        }
        let failed = errors.withLock { all in
            defer { all = [:] }
            return all
        }
        var commands: [RedisCommand] = []
        for (provider, fields) in taken {
            for (field, value) in fields { commands.append(RedisCommand("HINCRBY", KeyLayout.providerStats(provider), field, value)) }
        }
        for (provider, entries) in failed { commands += ProviderErrors.append(entries, provider: provider) }
        if !commands.isEmpty { _ = try await redis.pipeline(commands) }
        try await lanes.flush()
    }
}

extension [String: Int] {
    /// Adds one call to a provider's pending fields.
    fileprivate mutating func count(_ bucket: String, milliseconds: Int, rateLimited: Bool) {
        self[bucket, default: 0] += 1
        self["sum_ms", default: 0] += milliseconds
        self["count", default: 0] += 1
        if rateLimited { self["429", default: 0] += 1 }
    }
}
