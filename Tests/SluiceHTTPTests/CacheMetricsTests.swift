import Foundation
import SluiceCore
import SluiceQueue
import Testing

@testable import SluiceHTTP

/// /metrics shows the response cache's counters, as the cache's scripts keep them in Redis.
@Suite struct CacheMetricsTests {
    @Test func metricsShowCacheHitsCoalescedAndMisses() async throws {
        try await withAPI { api in
            let cache = ResponseCache(redis: api.queue.redis)
            let key = try #require(ResponseCacheKey(lane: "mock/a", scope: "acme", body: Array(#"{"temperature":0}"#.utf8), policy: .init()))
            func id(_ n: Int) -> JobID {
                var random = SplitMix64(seed: UInt64(n))
                return JobID.generate(lane: LaneTag(lane: "mock/a"), unixMillis: 1_700_000_000_000, using: &random)
            }
            #expect(try await cache.lookup(key, job: id(1), markerTTL: .seconds(30)) == .lead)
            #expect(try await cache.lookup(key, job: id(2), markerTTL: .seconds(30)) == .wait(leader: id(1).rawValue))
            try await cache.store(key, job: id(1), result: Array("{}".utf8), ttl: .seconds(60), tokens: 30)
            _ = try await cache.lookup(key, job: id(2), markerTTL: .seconds(30))
            _ = try await cache.lookup(key, job: id(3), markerTTL: .seconds(30))
            _ = try await cache.lookup(key, job: id(4), markerTTL: .seconds(30))
            try await api.scaling.tick()
            let text = try await ScalingRoutesTests.metrics(api)
            for line in ["sluice_cache_hits_total 2", "sluice_cache_coalesced_total 1", "sluice_cache_misses_total 1", "sluice_cache_saved_tokens_total 90"] {
                #expect(text.contains(line + "\n"), "\(line) not in \(text)")
            }
        }
    }
}
