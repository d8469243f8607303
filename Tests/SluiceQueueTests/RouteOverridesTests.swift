import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// Runtime route overrides in Redis: what every process sees, and the canary rollback's
/// compare-and-set.
@Suite struct RouteOverridesTests {
    static let canary = RouteCanary(provider: "b", model: "new", weight: 5, maxErrorRate: 0.05, minCalls: 20)

    /// Writes `outcomes` (newest first) as the recorder would: the list and the all-time counters.
    func record(_ redis: RedisClient, lane: String, outcomes: String) async throws {
        for character in outcomes.reversed() {
            _ = try await redis.send("LPUSH", KeyLayout.laneOutcomes(lane: lane), String(character))
            _ = try await redis.send("HINCRBY", KeyLayout.laneCalls(lane: lane), character == "1" ? "err" : "ok", 1)
        }
        _ = try await redis.send("LTRIM", KeyLayout.laneOutcomes(lane: lane), 0, KeyLayout.laneOutcomesCap - 1)
    }

    @Test func aChangeIsInForceAtOnceHereAndAfterARefreshElsewhere() async throws {
        try await withRedis { _, redis in
            let here = RouteOverrides(redis: redis, routes: ["split", "other"])
            let there = RouteOverrides(redis: redis, routes: ["split", "other"])
            #expect(try await there.refresh())  // the first read
            #expect(there.current.isEmpty)

            try await here.set("split", weights: ["a/m": 100, "b/m": 0], canary: nil, event: "weights by key sk_1")
            #expect(here.override("split")?.weights == ["a/m": 100, "b/m": 0])
            #expect(there.override("split") == nil, "another process sees it only when it refreshes")
            #expect(try await there.refresh())
            #expect(there.override("split")?.weights == ["a/m": 100, "b/m": 0])
            #expect(there.override("other") == nil)
            #expect(try await there.refresh() == false, "nothing changed: one GET, nothing re-read")

            try await here.set("split", weights: ["b/m": 10], canary: .init(lane: "b/new", weight: 7), event: "more")
            try await there.refresh()
            let override = try #require(there.override("split"))
            #expect(override.weights == ["a/m": 100, "b/m": 10])
            #expect(override.canary == .init(lane: "b/new", weight: 7))
            #expect(override.version == 2)

            let reset = try await here.reset("split", canaryLane: "b/new", event: "reset by key sk_1")
            #expect(reset.isEmpty)
            #expect(reset.version == 3)
            try await there.refresh()
            #expect(there.override("split")?.isEmpty == true)

            let events = try await here.events("split")
            #expect(events.map(\.kind) == ["reset", "set", "set"])
            #expect(events.first?.text == "reset by key sk_1")
        }
    }

    @Test func aRollbackHappensOnceHoweverManyProcessesDecideIt() async throws {
        try await withRedis { _, redis in
            let processes = (0..<8).map { _ in RouteOverrides(redis: redis, routes: ["split"]) }
            let canaryTally = CanaryPolicy.Tally(calls: 20, errors: 10)
            let mainTally = CanaryPolicy.Tally(calls: 40, errors: 0)
            let done = try await withThrowingTaskGroup(of: Bool.self) { group in
                for process in processes {
                    group.addTask {
                        try await process.rollBack(
                            "split", version: 0, canary: Self.canary, canaryTally: canaryTally, mainTally: mainTally, event: "rolled back")
                    }
                }
                var done = 0
                for try await rolled in group where rolled { done += 1 }
                return done
            }
            #expect(done == 1)
            let stored = try await processes[0].read("split")
            #expect(stored.canary == .init(lane: "b/new", weight: 0, byRollback: true))
            #expect(stored.canaryWeight(Self.canary) == 0)
            #expect(stored.rollbacks == 1)
            #expect(stored.lastRollback?.canary == canaryTally)
            #expect(stored.lastRollback?.main == mainTally)
            #expect(stored.lastRollback?.lane == "b/new")
            let events = try await processes[0].events("split")
            #expect(events.map(\.kind) == ["rolled_back"])

            // Already at 0: a later decision on the new version changes nothing.
            #expect(
                try await processes[1].rollBack(
                    "split", version: stored.version, canary: Self.canary, canaryTally: canaryTally, mainTally: mainTally, event: "again")
                    == false)
            #expect(try await processes[1].read("split").rollbacks == 1)
        }
    }

    @Test func anOperatorsChangeMadeAfterTheDecisionWins() async throws {
        try await withRedis { _, redis in
            let overrides = RouteOverrides(redis: redis, routes: ["split"])
            let decidedOn = try await overrides.read("split").version
            // The operator turns the canary up between the check's read and its rollback.
            try await overrides.set("split", weights: [:], canary: .init(lane: "b/new", weight: 20), event: "up")
            let rolled = try await overrides.rollBack(
                "split", version: decidedOn, canary: Self.canary, canaryTally: .init(calls: 20, errors: 20), mainTally: .init(),
                event: "rolled back")
            #expect(rolled == false)
            #expect(try await overrides.read("split").canaryWeight(Self.canary) == 20)
        }
    }

    @Test func theCheckReadsTheNewestOutcomesInsideTheCanarysWindow() async throws {
        try await withRedis { _, redis in
            let overrides = RouteOverrides(redis: redis, routes: ["split"])
            try await record(redis, lane: "b/new", outcomes: String(repeating: "1", count: 30))
            try await record(redis, lane: "a/m", outcomes: "0000000001" + String(repeating: "1", count: 50))
            var reading = try await overrides.reading("split", canary: Self.canary, main: ["a/m"])
            #expect(reading.canary == .init(calls: 20, errors: 20))
            #expect(reading.main == .init(calls: 20, errors: 11), "a main lane's newest 20 only")

            // The operator puts the canary back: its window starts after the 30 calls already made.
            try await overrides.set("split", weights: [:], canary: .init(lane: "b/new", weight: 5), event: "back")
            reading = try await overrides.reading("split", canary: Self.canary, main: ["a/m"])
            #expect(reading.canary == .init(calls: 0, errors: 0))
            try await record(redis, lane: "b/new", outcomes: "00001")
            reading = try await overrides.reading("split", canary: Self.canary, main: ["a/m"])
            #expect(reading.canary == .init(calls: 5, errors: 1))
            #expect(reading.override.window == .init(lane: "b/new", calls: 30))
        }
    }

    @Test func storedValuesThatDoNotReadAsNumbersAreIgnored() async throws {
        try await withRedis { _, redis in
            let overrides = RouteOverrides(redis: redis, routes: ["split"])
            _ = try await redis.send(
                "HSET", RouteOverrides.route("split"), "version", "4", "w:a/m", "nan", "w:b/m", "1e999", "w:c/m", "-5",
                "canary_lane", "b/new", "canary", "inf", "rollbacks", "x")
            let stored = try await overrides.read("split")
            #expect(stored.version == 4)
            #expect(stored.weights == ["c/m": 0])
            #expect(stored.canary == nil)
            #expect(stored.rollbacks == 0)
        }
    }

    @Test func garbageCountsNeitherStopAChangeNorARollback() async throws {
        try await withRedis { _, redis in
            let overrides = RouteOverrides(redis: redis, routes: ["split"])
            let other = RouteOverrides(redis: redis, routes: ["split"])
            #expect(try await other.refresh())
            // Counts another writer spoiled: the scripts' HINCRBY/INCR on them failed half-way.
            _ = try await redis.send("HSET", RouteOverrides.route("split"), "version", "x", "rollbacks", "1.5", "canary", "nan", "canary_lane", "b/new")
            _ = try await redis.send("SET", RouteOverrides.version, "not a number")
            let set = try await overrides.set("split", weights: ["a/m": 3], canary: nil, event: "weights")
            #expect(set.version == 1 && set.weights == ["a/m": 3])
            #expect(try await redis.send("GET", RouteOverrides.version).string == "1")
            #expect(try await other.refresh(), "the others see the change")
            #expect(other.override("split")?.weights == ["a/m": 3])
            // A rollback over them: the 'nan' weight reads as the configured one, as Swift reads it.
            #expect(set.canaryWeight(Self.canary) == 5)
            _ = try await redis.send("HSET", RouteOverrides.route("split"), "version", " 1", "rollbacks", "y")
            let tallies = (canary: CanaryPolicy.Tally(calls: 20, errors: 10), main: CanaryPolicy.Tally(calls: 20, errors: 0))
            let stored = try await overrides.read("split")
            #expect(stored.version == 0, "' 1' is not a count")
            #expect(
                try await overrides.rollBack(
                    "split", version: stored.version, canary: Self.canary, canaryTally: tallies.canary, mainTally: tallies.main,
                    event: "rolled back"))
            let after = try await overrides.read("split")
            #expect(after.version == 1 && after.rollbacks == 1)
            #expect(after.canaryWeight(Self.canary) == 0)
            #expect(try await redis.send("GET", RouteOverrides.version).string == "2")
        }
    }
}
