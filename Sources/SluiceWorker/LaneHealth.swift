import SluiceCore
import SluiceQueue
import SluiceRedis

/// What workers tell the rest of the cluster about lanes and providers: each lane's circuit
/// breaker, and the rate-limit figures its provider last announced. This is the write side;
/// `ProviderStateReader` (SluiceQueue) reads it for `GET /v1/providers`.
///
/// The breaker itself is per worker process; the state here is the last one a worker reported
/// (it expires on its own, so a crashed worker's "open" does not linger).
public struct LaneHealth: Sendable {
    public let redis: RedisClient

    public init(redis: RedisClient) { self.redis = redis }

    public typealias Breaker = ProviderState.Breaker
    public typealias Announced = ProviderState.Announced

    /// Records a lane's breaker: `state` nil (or closed) is closed, and the entry goes.
    public func report(lane: String, state: Breaker.State?, until: UnixMillis? = nil, reason: String = "") async throws {
        let key = KeyLayout.breaker(lane: lane)
        guard let state, state != .closed else {
            _ = try await redis.send("DEL", key)
            return
        }
        // Kept a while past the open period: a worker that half-opens it reports again.
        let keep = max(60_000, Bounded.add(Bounded.add(until?.value ?? 0, -UnixMillis.current().value), 60_000))
        _ = try await redis.send("SET", key, Breaker(state: state, until: until, reason: reason).encoded, "PX", keep)
    }

    /// Records a lane's breaker by the name a worker's `LaneControl` gives it ("open",
    /// "half-open"); nil or a name that is not a state is closed.
    public func report(lane: String, breaker name: String?, until: UnixMillis? = nil, reason: String = "") async throws {
        try await report(lane: lane, state: name.flatMap(Breaker.State.init(rawValue:)), until: until, reason: reason)
    }

    /// Records the rate-limit figures a provider announced.
    public func report(provider: String, announced: Announced) async throws {
        var fields: [any RedisArgument] = [KeyLayout.providerAnnounced(provider), "at", announced.at.value]
        func add(_ name: String, _ value: Int?) { fields += [name, value.map(String.init) ?? ""] }
        add("requests_remaining", announced.requestsRemaining)
        add("requests_limit", announced.requestsLimit)
        add("tokens_remaining", announced.tokensRemaining)
        add("tokens_limit", announced.tokensLimit)
        _ = try await redis.send(RedisCommand("HSET", fields))
    }
}
