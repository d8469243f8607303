import SluiceCore
import SluiceQueue
import SluiceRedis

/// What workers tell the rest of the cluster about lanes and providers, for `GET /v1/providers`:
/// each lane's circuit breaker, and the rate-limit figures its provider last announced.
///
/// The breaker itself is per worker process; the state here is the last one a worker reported
/// (it expires on its own, so a crashed worker's "open" does not linger).
public struct LaneHealth: Sendable {
    public let redis: RedisClient

    public init(redis: RedisClient) { self.redis = redis }

    public struct Breaker: Sendable, Hashable {
        /// "open" or "half-open" (a closed breaker has no entry).
        public var state: String
        /// When an open breaker lets a probe through.
        public var until: UnixMillis?
        public var reason: String
    }

    /// Records a lane's breaker: `state` nil is closed (the entry goes).
    public func report(lane: String, breaker state: String?, until: UnixMillis? = nil, reason: String = "") async throws {
        let key = KeyLayout.breaker(lane: lane)
        guard let state else {
            _ = try await redis.send("DEL", key)
            return
        }
        let value = "\(state) \(until?.value ?? 0) \(reason)"
        // Kept a while past the open period: a worker that half-opens it reports again.
        let keep = max(60_000, Bounded.add(Bounded.add(until?.value ?? 0, -UnixMillis.current().value), 60_000))
        _ = try await redis.send("SET", key, value, "PX", keep)
    }

    public func breaker(lane: String) async throws -> Breaker? {
        guard let text = try await redis.send("GET", KeyLayout.breaker(lane: lane)).string else { return nil }
        let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2 else { return nil }
        let until = Int64(parts[1]).flatMap { $0 > 0 ? UnixMillis($0) : nil }
        return Breaker(state: String(parts[0]), until: until, reason: parts.count > 2 ? String(parts[2]) : "")
    }

    /// The rate-limit figures a provider announced in its last answer's headers.
    public struct Announced: Sendable, Hashable {
        public var requestsRemaining: Int?
        public var requestsLimit: Int?
        public var tokensRemaining: Int?
        public var tokensLimit: Int?
        public var at: UnixMillis

        public init(requestsRemaining: Int?, requestsLimit: Int?, tokensRemaining: Int?, tokensLimit: Int?, at: UnixMillis) {
            self.requestsRemaining = requestsRemaining
            self.requestsLimit = requestsLimit
            self.tokensRemaining = tokensRemaining
            self.tokensLimit = tokensLimit
            self.at = at
        }
    }

    public func report(provider: String, announced: Announced) async throws {
        var fields: [any RedisArgument] = [KeyLayout.providerPrefix(provider) + "announced", "at", announced.at.value]
        func add(_ name: String, _ value: Int?) { fields += [name, value.map(String.init) ?? ""] }
        add("requests_remaining", announced.requestsRemaining)
        add("requests_limit", announced.requestsLimit)
        add("tokens_remaining", announced.tokensRemaining)
        add("tokens_limit", announced.tokensLimit)
        _ = try await redis.send(RedisCommand("HSET", fields))
    }

    public func announced(provider: String) async throws -> Announced? {
        let reply = try await redis.send(
            "HMGET", KeyLayout.providerPrefix(provider) + "announced", "at", "requests_remaining", "requests_limit",
            "tokens_remaining", "tokens_limit")
        guard let parts = reply.array, parts.count == 5, let at = parts[0].string.flatMap({ Int64($0) }) else { return nil }
        func int(_ index: Int) -> Int? { parts[index].string.flatMap { Int($0) } }
        return Announced(requestsRemaining: int(1), requestsLimit: int(2), tokensRemaining: int(3), tokensLimit: int(4), at: UnixMillis(at))
    }
}
