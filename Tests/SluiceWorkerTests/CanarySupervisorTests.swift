import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import SluiceWorker
import Synchronization
import Testing

/// The canary check over outcomes written as the recorder writes them, against a real Redis.
@Suite struct CanarySupervisorTests {
    static let configuration = try! SluiceConfiguration.load(yaml: """
        providers:
          a: { kind: openai, base_url: "http://127.0.0.1:9/v1" }
          b: { kind: openai, base_url: "http://127.0.0.1:9/v1" }
        routes:
          r: { targets: [a/m, a/n], canary: { target: b/new, weight: 5, max_error_rate: 0.1, min_calls: 10, alert_url: "http://127.0.0.1:9/hook", alert_key: sluice_abc } }
          plain: [a/m, a/n]
        """)

    /// Queued webhooks, as the outbox got them.
    final class Outbox: WebhookOutbox {
        let created = Mutex<[(subject: String, url: String, key: Int64?, type: String, body: [UInt8])]>([])
        func create(subject: String, url: String, key: Int64?, type: String, body: [UInt8]) async throws -> Bool {
            created.withLock { $0.append((subject, url, key, type, body)) }
            return true
        }
    }

    func record(_ redis: RedisClient, lane: String, _ outcomes: String) async throws {
        for character in outcomes.reversed() {
            _ = try await redis.send("LPUSH", KeyLayout.laneOutcomes(lane: lane), String(character))
            _ = try await redis.send("HINCRBY", KeyLayout.laneCalls(lane: lane), character == "1" ? "err" : "ok", 1)
        }
    }

    func supervisor(_ redis: RedisClient, outbox: Outbox? = nil, routes: [String: SluiceConfiguration.Route] = configuration.routes)
        -> (CanarySupervisor, RouteOverrides)
    {
        let overrides = RouteOverrides(redis: redis, routes: Array(routes.keys))
        var logger = Logger(label: "test.canary")
        logger.logLevel = .critical
        return (CanarySupervisor(overrides: overrides, routes: routes, alerts: outbox, alertKeys: ["sluice_abc": 42], logger: logger), overrides)
    }

    @Test func aFailingCanaryIsRolledBackOnceWithAnAlert() async throws {
        try await withRedis { _, redis in
            let outbox = Outbox()
            let (supervisor, overrides) = supervisor(redis, outbox: outbox)
            try await record(redis, lane: "b/new", "111000000")  // 9 calls: under min_calls
            try await record(redis, lane: "a/m", "0000000000")
            #expect(await supervisor.check() == [])
            try await record(redis, lane: "b/new", "1")  // the 10th: 4 of 10 failed
            #expect(await supervisor.check() == ["r"])
            #expect(await supervisor.check() == [], "already at 0")
            let stored = try await overrides.read("r")
            #expect(stored.canaryWeight(try #require(Self.configuration.routes["r"]?.canary)) == 0)
            #expect(stored.lastRollback?.canary == .init(calls: 10, errors: 4))
            #expect(stored.lastRollback?.main == .init(calls: 10, errors: 0))

            let alerts = outbox.created.withLock { $0 }
            #expect(alerts.count == 1)
            #expect(alerts.first?.subject == "route_r_rollback_1")
            #expect(alerts.first?.key == 42)
            #expect(alerts.first?.type == "route.canary.rolled_back")
            let body = try #require(try JSONSerialization.jsonObject(with: Data(alerts.first?.body ?? [])) as? [String: Any])
            #expect(body["route"] as? String == "r")
            #expect(body["target"] as? String == "b/new")
            #expect((body["canary"] as? [String: Any])?["error_rate"] as? Double == 0.4)
        }
    }

    @Test func aCanaryIsKeptWhenTheMainTargetsFailToo() async throws {
        try await withRedis { _, redis in
            let (supervisor, overrides) = supervisor(redis)
            try await record(redis, lane: "b/new", "1111100000")
            try await record(redis, lane: "a/m", "1111100000")
            try await record(redis, lane: "a/n", "0000000000")  // together: 5 of 20, 25%
            #expect(await supervisor.check() == [])
            #expect(try await overrides.read("r").version == 0)
        }
    }

    @Test func aCanaryPutBackByAnOperatorIsJudgedOnItsNewCallsOnly() async throws {
        try await withRedis { _, redis in
            let (supervisor, overrides) = supervisor(redis)
            try await record(redis, lane: "b/new", "1111111111")
            #expect(await supervisor.check() == ["r"])
            try await overrides.set("r", weights: [:], canary: .init(lane: "b/new", weight: 5), event: "back")
            #expect(await supervisor.check() == [], "the old failures are before its window")
            try await record(redis, lane: "b/new", "0000000000")
            #expect(await supervisor.check() == [])
            try await record(redis, lane: "b/new", "11111")
            #expect(await supervisor.check() == ["r"])
            #expect(try await overrides.read("r").rollbacks == 2)
        }
    }

    @Test func aCanaryAtZeroAndRoutesWithoutOneCostNoRedisWork() async throws {
        try await withRedis { _, redis in
            let (plain, _) = supervisor(redis, routes: ["plain": try #require(Self.configuration.routes["plain"])])
            let before = redis.roundTrips
            #expect(await plain.check() == [])
            #expect(redis.roundTrips == before)

            let (supervisor, overrides) = supervisor(redis)
            try await overrides.set("r", weights: [:], canary: .init(lane: "b/new", weight: 0), event: "off")
            let atZero = redis.roundTrips
            #expect(await supervisor.check() == [])
            #expect(redis.roundTrips == atZero)
        }
    }
}

/// The supervisor as a service: a graceful shutdown ends it at once, not after its interval.
@Suite struct CanarySupervisorServiceTests {
    @Test func aGracefulShutdownEndsTheWaitBetweenChecks() async throws {
        try await withRedis { _, redis in
            let routes = CanarySupervisorTests.configuration.routes
            var logger = Logger(label: "test.canary")
            logger.logLevel = .critical
            // A check an hour: only the shutdown can end the wait in time.
            let supervisor = CanarySupervisor(
                overrides: RouteOverrides(redis: redis, routes: Array(routes.keys)), routes: routes, interval: .seconds(3_600), logger: logger)
            // Past 120 s the group cancels it (so a wait that ignores the shutdown fails, not hangs).
            var configuration = ServiceGroupConfiguration(services: [supervisor], logger: logger)
            configuration.maximumGracefulShutdownDuration = .seconds(120)
            let group = ServiceGroup(configuration: configuration)
            let clock = ContinuousClock()
            let took = try await clock.measure {
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask { try await group.run() }
                    try await Task.sleep(for: .milliseconds(300))  // past its first check, into the wait
                    await group.triggerGracefulShutdown()
                    try? await tasks.waitForAll()
                }
            }
            // Below the 120 s limit (so it was the shutdown that ended the wait), loose for a loaded machine.
            #expect(took < .seconds(60), "\(took)")
        }
    }
}
