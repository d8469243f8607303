import SluiceCore
import SluiceQueue
import SluiceRedis
import Testing

/// The read side of provider state, against a real redis-server: what workers wrote, read back
/// for every provider at once.
@Suite struct ProviderStateReaderTests {
    @Test func readsEveryProvidersStateAndOnlyItsOwnLanes() async throws {
        try await withQueue { queue, _ in
            let redis = queue.redis
            let now = UnixMillis.current()
            _ = try await queue.enqueue([spec("p1"), spec("p1"), spec("p1/model-a"), spec("p10/model-b")])
            _ = try await queue.lease(lane: "p1", count: 1)
            _ = try await redis.pipeline([
                RedisCommand("SET", KeyLayout.providerPause("p1"), now.value + 30_000),
                RedisCommand("SET", KeyLayout.providerRamp("p1"), 2),
                RedisCommand("SET", KeyLayout.providerProbe("p1"), "slot"),
                // One live slot, one whose lease has ended.
                RedisCommand("ZADD", KeyLayout.providerSlots("p1"), now.value + 60_000, "live", now.value - 1, "expired"),
                RedisCommand(
                    "HSET", KeyLayout.providerAnnounced("p1"), "at", now.value, "requests_remaining", "12", "requests_limit", "60",
                    "tokens_remaining", "", "tokens_limit", ""),
                RedisCommand("SET", KeyLayout.breaker(lane: "p1/model-a"), "half-open 0 probing"),
                // A pause that has ended is no pause.
                RedisCommand("SET", KeyLayout.providerPause("p10"), now.value - 1),
            ])
            let states = try await ProviderStateReader(redis: redis).states(
                providers: ["p1", "p2", "p10"], lanes: try await queue.lanes(), now: now)
            #expect(states.map(\.provider) == ["p1", "p2", "p10"])
            let p1 = states[0]
            #expect(p1.pausedUntil == UnixMillis(now.value + 30_000))
            #expect(p1.resuming == .init(probe: true, window: 2))
            #expect(p1.slotsHeld == 1)
            #expect(p1.announced == .init(requestsRemaining: 12, requestsLimit: 60, tokensRemaining: nil, tokensLimit: nil, at: now))
            #expect(p1.lanes.map(\.lane) == ["p1", "p1/model-a"], "p10's lanes are not p1's")
            #expect(p1.lanes[0].counts == LaneCounts(ready: 1, leased: 1, delayed: 0))
            #expect(p1.lanes[0].breaker == nil)
            #expect(p1.lanes[1].breaker == .init(state: .halfOpen, until: nil, reason: "probing"))
            #expect(p1.leased == 1)
            #expect(states[1] == ProviderState(provider: "p2", pausedUntil: nil, resuming: nil, slotsHeld: 0, announced: nil, lanes: []))
            #expect(states[2].pausedUntil == nil)
            #expect(states[2].lanes.map(\.lane) == ["p10/model-b"])
        }
    }

    @Test func readsEveryProvidersCallStats() async throws {
        try await withQueue { queue, _ in
            _ = try await queue.redis.pipeline([
                RedisCommand("HINCRBY", KeyLayout.providerStats("a"), ProviderCallStats.bucketField(.milliseconds(80)), 2),
                RedisCommand("HINCRBY", KeyLayout.providerStats("a"), ProviderCallStats.bucketField(.seconds(500)), 1),
                RedisCommand("HINCRBY", KeyLayout.providerStats("a"), "sum_ms", 500_160),
                RedisCommand("HINCRBY", KeyLayout.providerStats("a"), "count", 3),
                RedisCommand("HINCRBY", KeyLayout.providerStats("a"), "429", 1),
            ])
            let stats = try await ProviderStateReader(redis: queue.redis).callStats(providers: ["a", "b"])
            #expect(stats.count == 2)
            #expect(stats[0].count == 3 && stats[0].rateLimited == 1 && stats[0].sumSeconds == 500.16)
            #expect(stats[0].cumulative.first?.count == 0, "0.05 s: none")
            #expect(stats[0].cumulative[1].le == "0.1" && stats[0].cumulative[1].count == 2)
            #expect(stats[0].cumulative.last?.le == "+Inf" && stats[0].cumulative.last?.count == 3)
            #expect(stats[1].count == 0 && stats[1].cumulative.allSatisfy { $0.count == 0 })
        }
    }

    @Test func breakerReportsRoundTripAndForeignTextIsNoBreaker() {
        let breaker = ProviderState.Breaker(state: .open, until: UnixMillis(1_700_000_000_000), reason: "HTTP 500 in 3 ms")
        #expect(ProviderState.Breaker(encoded: breaker.encoded) == breaker)
        #expect(ProviderState.Breaker(encoded: "half-open 0 ") == .init(state: .halfOpen, until: nil, reason: ""))
        #expect(ProviderState.Breaker(encoded: "sideways 0 x") == nil)
        #expect(ProviderState.Breaker(encoded: "open") == nil)
    }

    @Test func aProvidersLanesAreItselfAndItsModels() {
        let lanes = ["openai", "openai/gpt-4o", "openai-eu/gpt-4o", "openaix", "local/qwen"]
        #expect(ProviderStateReader.lanes(of: "openai", in: lanes) == ["openai", "openai/gpt-4o"])
        #expect(ProviderStateReader.lanes(of: "anthropic", in: lanes) == [])
    }
}
