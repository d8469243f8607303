import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// The response cache's scripts on a real Redis: one leader per key, waiters get its result
/// marked coalesced, a failed leader frees the key, results expire and are evicted under the cap.
@Suite struct ResponseCacheTests {
    static func key(_ text: String, scope: String = "t1") -> ResponseCacheKey {
        ResponseCacheKey(lane: "lane-a", scope: scope, body: Array(#"{"temperature":0,"q":"\#(text)"}"#.utf8), policy: .init())!
    }

    static func id(_ n: Int) -> JobID {
        var random = SplitMix64(seed: UInt64(n))
        return JobID.generate(lane: LaneTag(lane: "lane-a"), unixMillis: 1_700_000_000_000 + Int64(n), using: &random)
    }

    @Test func oneLeaderPerKeyAndItsWaitersGetItsResultCoalesced() async throws {
        try await withRedis { _, redis in
            let cache = ResponseCache(redis: redis)
            let key = Self.key("a")
            #expect(try await cache.lookup(key, job: Self.id(1), markerTTL: .seconds(30)) == .lead)
            #expect(try await cache.lookup(key, job: Self.id(2), markerTTL: .seconds(30)) == .wait(leader: Self.id(1).rawValue))
            // The leader asking again (a retried lookup) still leads.
            #expect(try await cache.lookup(key, job: Self.id(1), markerTTL: .seconds(30)) == .lead)
            // Another key is independent.
            #expect(try await cache.lookup(Self.key("b"), job: Self.id(3), markerTTL: .seconds(30)) == .lead)
            let stored = try await cache.store(key, job: Self.id(1), result: Array("answer".utf8), ttl: .seconds(60))
            #expect(stored.stored)
            #expect(try await cache.lookup(key, job: Self.id(2), markerTTL: .seconds(30)) == .coalesced(Array("answer".utf8)))
            #expect(try await cache.lookup(key, job: Self.id(4), markerTTL: .seconds(30)) == .hit(Array("answer".utf8)))
            let stats = try await cache.stats()
            #expect(stats.hits == 1 && stats.coalesced == 1 && stats.misses == 3)
        }
    }

    @Test func aLeaderThatGivesUpOrDiesFreesTheKeyForAWaiter() async throws {
        try await withRedis { _, redis in
            let cache = ResponseCache(redis: redis)
            let key = Self.key("a")
            #expect(try await cache.lookup(key, job: Self.id(1), markerTTL: .seconds(30)) == .lead)
            try await cache.abandon(key, job: Self.id(1))
            #expect(try await cache.lookup(key, job: Self.id(2), markerTTL: .seconds(30)) == .lead)
            #expect(try await cache.lookup(key, job: Self.id(3), markerTTL: .seconds(30)) == .wait(leader: Self.id(2).rawValue))
            // Job 2 "dies": its marker runs out with the lease's TTL (cut short here, so a loaded
            // machine's pause between two lookups cannot expire it early), and a waiter leads.
            let marker = ResponseCache.prefix + "inflight:" + key.digest
            #expect(try await redis.send("PEXPIRE", marker, "50").int == 1)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await cache.lookup(key, job: Self.id(3), markerTTL: .seconds(30)) == .lead)
            // The dead leader's late store does not remove the new leader's marker.
            try await cache.store(key, job: Self.id(2), result: Array("late".utf8), ttl: .seconds(60))
            #expect(try await redis.send("GET", ResponseCache.prefix + "inflight:" + key.digest).string == Self.id(3).rawValue)
        }
    }

    @Test func resultsExpireWithTheirTTL() async throws {
        try await withRedis { _, redis in
            let cache = ResponseCache(redis: redis)
            let key = Self.key("a")
            _ = try await cache.lookup(key, job: Self.id(1), markerTTL: .seconds(30))
            // 3 s: room for a loaded machine between the store and the first lookup.
            try await cache.store(key, job: Self.id(1), result: Array("answer".utf8), ttl: .seconds(3))
            #expect(try await cache.lookup(key, job: Self.id(2), markerTTL: .seconds(30)) == .hit(Array("answer".utf8)))
            try await Task.sleep(for: .milliseconds(3500))
            #expect(try await cache.lookup(key, job: Self.id(3), markerTTL: .seconds(30)) == .lead)
            // The expired result's bytes are given back at the next store.
            try await cache.store(Self.key("b"), job: Self.id(4), result: Array("xy".utf8), ttl: .seconds(60))
            #expect(try await cache.bytes() == 2)
        }
    }

    @Test func theByteCapEvictsTheOldestAndRefusesWhatCannotFit() async throws {
        try await withRedis { _, redis in
            let cache = ResponseCache(redis: redis, maxBytes: 25)
            let result = [UInt8](repeating: UInt8(ascii: "x"), count: 10)
            for n in 1...3 {
                let outcome = try await cache.store(Self.key("k\(n)"), job: Self.id(n), result: result, ttl: .seconds(60))
                #expect(outcome.stored)
                #expect(outcome.evicted == (n == 3 ? 1 : 0))
            }
            #expect(try await cache.bytes() == 20)
            #expect(try await cache.lookup(Self.key("k1"), job: Self.id(9), markerTTL: .seconds(30)) == .lead)
            #expect(try await cache.lookup(Self.key("k3"), job: Self.id(9), markerTTL: .seconds(30)) == .hit(result))
            let big = try await cache.store(Self.key("big"), job: Self.id(8), result: [UInt8](repeating: 0x61, count: 26), ttl: .seconds(60))
            #expect(!big.stored)
            #expect(try await cache.bytes() == 20)
        }
    }

    @Test func tenantsDoNotShareResults() async throws {
        try await withRedis { _, redis in
            let cache = ResponseCache(redis: redis)
            let mine = Self.key("a", scope: "t1"), theirs = Self.key("a", scope: "t2")
            _ = try await cache.lookup(mine, job: Self.id(1), markerTTL: .seconds(30))
            try await cache.store(mine, job: Self.id(1), result: Array("t1's".utf8), ttl: .seconds(60))
            #expect(try await cache.lookup(theirs, job: Self.id(2), markerTTL: .seconds(30)) == .lead)
        }
    }
}
