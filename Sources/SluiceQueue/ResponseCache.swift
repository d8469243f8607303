import Foundation
import SluiceCore
import SluiceRedis

/// The response cache in Redis: stored results of cacheable requests (by `ResponseCacheKey`),
/// and the in-flight markers that coalesce identical requests into one provider call.
///
/// Keys, all under the `{cache}` hash tag (one Redis Cluster slot): `sluice:{cache}:r:<digest>`
/// (the result, with its TTL), `inflight:<digest>` (the leader's job id, with the lease's TTL),
/// `waited:<digest>` (jobs told to wait), `stored` and `expires` (zsets for eviction and
/// accounting), `sizes` (hash) and `bytes` (their sum), `tokens` (hash: what each stored call
/// used), `stats` (hash: hit, coalesced, miss, evicted, saved_tokens; what `/metrics` shows).
///
/// Guarantee: one provider call per key while its leader's marker lives; a leader that dies
/// frees the key when the marker's TTL (its lease's) runs out, and a waiting job then leads.
/// Only results a leader stores are served, and a leader stores only a succeeded call's answer.
public struct ResponseCache: Sendable {
    public let redis: RedisClient
    /// The cap on the bytes of all stored results (0: none).
    public var maxBytes: Int
    let lookupScript: RedisScript
    let storeScript: RedisScript
    let abandonScript: RedisScript

    /// The prefix of every cache key.
    public static let prefix = KeyLayout.root + "{cache}:"

    public init(redis: RedisClient, maxBytes: Int = 0) {
        self.redis = redis
        self.maxBytes = max(0, maxBytes)
        do {
            lookupScript = try QueueScripts.load("cache-lookup")
            storeScript = try QueueScripts.load("cache-store")
            abandonScript = try QueueScripts.load("cache-abandon")
        } catch {
            // The scripts ship inside the package; without them the build itself is broken.
            fatalError("Sluice's cache scripts are missing from the bundle: \(error)")
        }
    }

    /// What a lookup found.
    public enum Lookup: Sendable, Equatable {
        /// A stored result: the job completes with it, no call.
        case hit([UInt8])
        /// A stored result the job had waited for (it was told `wait` before).
        case coalesced([UInt8])
        /// Nobody has the answer or is calling: this job calls, then `store`s or `abandon`s.
        case lead
        /// Another job (`leader`) is calling now: come back later.
        case wait(leader: String)
    }

    /// Looks `key` up for `job`; a miss with nobody in flight makes `job` the leader for
    /// `markerTTL` (its lease's length).
    public func lookup(_ key: ResponseCacheKey, job: JobID, markerTTL: Duration) async throws -> Lookup {
        let ttl = Bounded.clamp(Bounded.milliseconds(markerTTL), to: 1000...86_400_000)
        let reply = try await redis.run(lookupScript, keys: [Self.prefix], arguments: [key.digest, job.rawValue, ttl])
        guard let parts = reply.array, let verdict = parts.first?.string else {
            throw RedisError.unexpectedReply("cache-lookup: \(reply)")
        }
        switch verdict {
        case "hit": return .hit(parts.count > 1 ? parts[1].bytes ?? [] : [])
        case "coalesced": return .coalesced(parts.count > 1 ? parts[1].bytes ?? [] : [])
        case "lead": return .lead
        default: return .wait(leader: parts.count > 1 ? parts[1].string ?? "" : "")
        }
    }

    /// Stores a leader's succeeded `result` for `ttl` and frees the key for the waiting jobs;
    /// `tokens` (what its call used) are counted as saved by each later hit.
    /// Returns whether it was stored (a result larger than the cap is not) and how many older
    /// results were evicted to fit it.
    @discardableResult
    public func store(
        _ key: ResponseCacheKey, job: JobID, result: [UInt8], ttl: Duration, tokens: Int = 0
    ) async throws -> (stored: Bool, evicted: Int) {
        let millis = Bounded.clamp(Bounded.milliseconds(ttl), to: 1000...Bounded.milliseconds(ResponseCachePolicy.maxTTL))
        let reply = try await redis.run(
            storeScript, keys: [Self.prefix], arguments: [key.digest, job.rawValue, result, millis, maxBytes, Bounded.tokens(tokens)])
        let parts = reply.array ?? []
        return (parts.first?.int == 1, parts.count > 2 ? parts[2].int ?? 0 : 0)
    }

    /// A leader whose call did not succeed frees the key at once (the next waiting job leads).
    public func abandon(_ key: ResponseCacheKey, job: JobID) async throws {
        _ = try await redis.run(abandonScript, keys: [Self.prefix], arguments: [key.digest, job.rawValue])
    }

    /// The counters since the cache's keys were created.
    public struct Stats: Sendable, Hashable {
        public var hits = 0
        public var coalesced = 0
        public var misses = 0
        public var evicted = 0
        /// The tokens the calls answered from the cache (hit or coalesced) would have used.
        public var savedTokens = 0

        public init(hits: Int = 0, coalesced: Int = 0, misses: Int = 0, evicted: Int = 0, savedTokens: Int = 0) {
            self.hits = hits
            self.coalesced = coalesced
            self.misses = misses
            self.evicted = evicted
            self.savedTokens = savedTokens
        }
    }

    public func stats() async throws -> Stats {
        let reply = try await redis.send("HMGET", Self.prefix + "stats", "hit", "coalesced", "miss", "evicted", "saved_tokens")
        let values = (reply.array ?? []).map { $0.int ?? 0 }
        func at(_ index: Int) -> Int { index < values.count ? max(0, values[index]) : 0 }
        return Stats(hits: at(0), coalesced: at(1), misses: at(2), evicted: at(3), savedTokens: at(4))
    }

    /// The bytes all stored results hold (as accounted; expired ones are subtracted at the next store).
    public func bytes() async throws -> Int {
        try await redis.send("GET", Self.prefix + "bytes").int ?? 0
    }
}
