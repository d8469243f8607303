import SluiceCore
import SluiceRedis

/// The read side of provider state, below both the HTTP API and the workers: for `/v1/providers`
/// and `/metrics`, every provider's state in one pipeline (one round trip after the lanes are
/// listed), whatever the number of providers and lanes. Nothing here writes.
///
/// The keys it reads are named in `KeyLayout+Providers.swift`, which the workers' writes (the
/// limiter's scripts, breaker and header reports, call statistics) use too.
public struct ProviderStateReader: Sendable {
    public let redis: RedisClient

    public init(redis: RedisClient) { self.redis = redis }

    /// The state of each of `providers` (in that order), with those of `lanes` that serve it.
    /// `now` decides whether a pause still runs and which concurrency slots have expired.
    public func states(providers: [String], lanes: [String], now: UnixMillis = .current()) async throws -> [ProviderState] {
        let served = providers.map { Self.lanes(of: $0, in: lanes) }
        var commands: [RedisCommand] = []
        commands.reserveCapacity(providers.count * 5 + lanes.count * 4)
        for (provider, lanes) in zip(providers, served) {
            commands += [
                RedisCommand("GET", KeyLayout.providerPause(provider)),
                RedisCommand("GET", KeyLayout.providerRamp(provider)),
                RedisCommand("EXISTS", KeyLayout.providerProbe(provider)),
                // Slots are scored by when their lease ends: the live ones end after now.
                RedisCommand("ZCOUNT", KeyLayout.providerSlots(provider), "(\(now.value)", "+inf"),
                RedisCommand("HMGET", [KeyLayout.providerAnnounced(provider)] + ProviderState.Announced.fields.map { $0 as any RedisArgument }),
            ]
            for lane in lanes {
                commands += [
                    RedisCommand("HGET", KeyLayout.meta(lane: lane), "ready"),
                    RedisCommand("HGET", KeyLayout.meta(lane: lane), "leased"),
                    RedisCommand("ZCARD", KeyLayout.delayed(lane: lane)),
                    RedisCommand("GET", KeyLayout.breaker(lane: lane)),
                ]
            }
        }
        let replies = try await redis.pipeline(commands)
        guard replies.count == commands.count else {
            throw QueueError.unexpectedReply(script: "provider-state", "\(replies.count) replies to \(commands.count) commands")
        }
        var next = replies.makeIterator()
        func reply() -> RedisValue { next.next() ?? .null }
        var states: [ProviderState] = []
        states.reserveCapacity(providers.count)
        for (provider, lanes) in zip(providers, served) {
            let pause = reply().string.flatMap { Int64($0) }
            let ramp = reply().string.flatMap { Int($0) }
            let probe = reply().int == 1
            let slots = reply().int ?? 0
            let announced = Self.announced(reply())
            var laneStates: [ProviderState.Lane] = []
            laneStates.reserveCapacity(lanes.count)
            for lane in lanes {
                let counts = LaneCounts(ready: reply().int ?? 0, leased: reply().int ?? 0, delayed: reply().int ?? 0)
                let breaker = reply().string.flatMap(ProviderState.Breaker.init(encoded:))
                laneStates.append(ProviderState.Lane(lane: lane, counts: counts, breaker: breaker))
            }
            states.append(
                ProviderState(
                    provider: provider, pausedUntil: pause.flatMap { $0 > now.value ? UnixMillis($0) : nil },
                    resuming: ramp.map { ProviderState.Resuming(probe: probe, window: $0) }, slotsHeld: slots, announced: announced,
                    lanes: laneStates))
        }
        return states
    }

    /// The call statistics of each of `providers` (in that order), in one pipeline.
    public func callStats(providers: [String]) async throws -> [ProviderCallStats] {
        guard !providers.isEmpty else { return [] }
        let replies = try await redis.pipeline(providers.map { RedisCommand("HGETALL", KeyLayout.providerStats($0)) })
        return providers.indices.map { index in
            let flat = index < replies.count ? replies[index].array ?? [] : []
            var fields: [String: Int] = [:]
            for field in stride(from: 0, to: flat.count - 1, by: 2) {
                if let name = flat[field].string, let value = flat[field + 1].string.flatMap({ Int($0) }) { fields[name] = value }
            }
            return ProviderCallStats(fields: fields)
        }
    }

    /// The breaker a worker last reported for `lane`; nil: closed.
    public func breaker(lane: String) async throws -> ProviderState.Breaker? {
        try await redis.send("GET", KeyLayout.breaker(lane: lane)).string.flatMap(ProviderState.Breaker.init(encoded:))
    }

    /// The lanes among `lanes` that serve `provider`: `provider` itself and `provider/<model>`.
    public static func lanes(of provider: String, in lanes: [String]) -> [String] {
        lanes.filter { $0 == provider || ($0.hasPrefix(provider) && $0.dropFirst(provider.count).first == "/") }
    }

    /// The announced figures of an `HMGET` of `Announced.fields`; nil if none were ever stored.
    static func announced(_ reply: RedisValue) -> ProviderState.Announced? {
        guard let parts = reply.array, parts.count == 5, let at = parts[0].string.flatMap({ Int64($0) }) else { return nil }
        func int(_ index: Int) -> Int? { parts[index].string.flatMap { Int($0) } }
        return ProviderState.Announced(
            requestsRemaining: int(1), requestsLimit: int(2), tokensRemaining: int(3), tokensLimit: int(4), at: UnixMillis(at))
    }
}
