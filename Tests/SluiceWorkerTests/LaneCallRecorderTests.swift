import Foundation
import SluiceCore
import SluiceProviders
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

@testable import SluiceWorker

/// The per-call recorder and lane-calls.lua against a real redis-server: the decayed latency
/// figure, the capped outcome list, and which calls count as an error of the target.
@Suite struct LaneCallRecorderTests {
    static let lane = "mock/m"

    func read(_ redis: RedisClient) async throws -> (p50: Double?, at: Int64?, n: Int?, ok: Int?, err: Int?) {
        let reply = try await redis.send("HMGET", KeyLayout.laneCalls(lane: Self.lane), "p50", "at", "n", "ok", "err").array ?? []
        let text = reply.map(\.string)
        return (text[0].flatMap(Double.init), text[1].flatMap { Int64($0) }, text[2].flatMap { Int($0) },
            text[3].flatMap { Int($0) }, text[4].flatMap { Int($0) })
    }

    @Test func theLatencyFigureMovesFivePercentPerCallAndForgetsWithTime() async throws {
        try await withRedis { _, redis in
            let recorder = LaneCallRecorder(redis: redis)
            // The first flush sets the figure to its median.
            for ms in [100, 300, 200] { recorder.record(lane: Self.lane, .success(.milliseconds(ms))) }
            try await recorder.flush()
            var figures = try await read(redis)
            #expect(figures.p50 == 200 && figures.n == 3)
            let first = try #require(figures.at)
            // One call of 1000 ms moves it 5% of the way, and the time between the two flushes
            // (Redis TIME, read back: a loaded machine may take a while) decays it a little.
            recorder.record(lane: Self.lane, .success(.milliseconds(1_000)))
            try await recorder.flush()
            figures = try await read(redis)
            let once = try #require(figures.p50)
            let gap = Double(try #require(figures.at) - first)
            let moved = 1_000 + (200 - 1_000) * 0.95 * pow(0.5, gap / 30_000)
            #expect(abs(once - moved) < 0.01, "\(once) against \(moved) after \(gap) ms")
            #expect(once >= 240 && once < 300, "\(once)")
            #expect(figures.n == 4)
            // Left alone for a half-life (30 s), the old figure counts half as much again.
            let at = try #require(figures.at)
            try await redis.send("HSET", KeyLayout.laneCalls(lane: Self.lane), "at", String(at - 30_000))
            recorder.record(lane: Self.lane, .success(.milliseconds(1_000)))
            try await recorder.flush()
            let later = try await read(redis)
            let decayed = try #require(later.p50)
            // The half-life plus the time the flush took to come (read back: seconds on a loaded machine).
            let since = Double(try #require(later.at) - (at - 30_000))
            #expect(since >= 30_000)
            let expected = 1_000 + (once - 1_000) * 0.95 * pow(0.5, since / 30_000)
            #expect(abs(decayed - expected) < 1.5, "\(decayed) against \(expected)")
            // Both keys expire (a lane nobody calls any more is forgotten).
            let ttl = try await redis.send("PTTL", KeyLayout.laneCalls(lane: Self.lane)).int ?? -1
            #expect(ttl > 86_400_000)
        }
    }

    @Test func theOutcomeListKeepsTheNewestThousandNewestFirst() async throws {
        try await withRedis { _, redis in
            let recorder = LaneCallRecorder(redis: redis)
            // 1,200 calls, every fourth an error: only the last 1,000 are kept.
            for index in 0..<1_200 { recorder.record(lane: Self.lane, index % 4 == 0 ? .error : .notAnError) }
            try await recorder.flush()
            let key = KeyLayout.laneOutcomes(lane: Self.lane)
            #expect(try await redis.send("LLEN", key).int == 1_000)
            let list = try #require(try await redis.send("LRANGE", key, "0", "-1").array).compactMap(\.string)
            #expect(list.filter { $0 == "1" }.count == 250)
            // Newest first: the last call (1199) was not an error, the one before 1196 was.
            #expect(list[0] == "0" && list[3] == "1")
            // A later flush pushes in front and the list stays capped.
            recorder.record(lane: Self.lane, .error)
            try await recorder.flush()
            #expect(try await redis.send("LINDEX", key, "0").string == "1")
            #expect(try await redis.send("LLEN", key).int == 1_000)
            let figures = try await read(redis)
            #expect(figures.err == 251 && figures.ok == 750)
            #expect(figures.p50 == nil, "no success measured: no latency figure")
            // Nothing recorded: a flush sends nothing.
            try await recorder.flush()
        }
    }

    @Test func onlyTheTargetsOwnFailuresCountAsErrors() {
        let latency = Duration.milliseconds(12)
        #expect(LaneCallRecorder.Outcome.of(.success(nil), latency: latency, cancelled: false) == .success(latency))
        #expect(LaneCallRecorder.Outcome.of(.retryable("HTTP 503"), latency: latency, cancelled: false) == .error)
        #expect(LaneCallRecorder.Outcome.of(.fatal("HTTP 400"), latency: latency, cancelled: false) == .notAnError)
        #expect(LaneCallRecorder.Outcome.of(.contextLength("too long"), latency: latency, cancelled: false) == .notAnError)
        #expect(LaneCallRecorder.Outcome.of(.rateLimited(RateLimitInfo(headers: []), message: "slow down"), latency: latency, cancelled: false) == nil)
        #expect(LaneCallRecorder.Outcome.of(.retryable("reset"), latency: latency, cancelled: true) == nil)
    }
}

/// What another writer may leave in a lane's figures, and what one call costs the recorder.
@Suite struct LaneCallRecorderHostileTests {
    static let lane = "mock/m"

    @Test func aFigureThatIsNotANumberIsReplacedNotKept() async throws {
        try await withRedis { _, redis in
            let key = KeyLayout.laneCalls(lane: Self.lane)
            let recorder = LaneCallRecorder(redis: redis)
            // Lua's tonumber reads 'nan' and 'inf' as numbers: they must not poison the figure.
            for garbage in [("nan", "1"), ("inf", "1"), ("-inf", "nan"), ("12", "inf"), ("abc", "-5")] {
                _ = try await redis.send("HSET", key, "p50", garbage.0, "at", garbage.1)
                recorder.record(lane: Self.lane, .success(.milliseconds(40)))
                try await recorder.flush()
                let text = try await redis.send("HGET", key, "p50").string
                let p50 = try #require(text.flatMap(Double.init), "p50 \(String(describing: text)) after \(garbage)")
                #expect(p50.isFinite && p50 >= 0 && p50 <= 40, "p50 \(p50) after \(garbage)")
            }
        }
    }

    @Test func aCountThatIsNotAWholeNumberStartsAgainAndTheFlushLands() async throws {
        try await withRedis { _, redis in
            let key = KeyLayout.laneCalls(lane: Self.lane)
            let recorder = LaneCallRecorder(redis: redis)
            _ = try await redis.send("HSET", key, "n", "x", "ok", "1.5", "err", "nan")
            recorder.record(lane: Self.lane, .success(.milliseconds(40)))
            recorder.record(lane: Self.lane, .error)
            try await recorder.flush()
            let counts = try #require(try await redis.send("HMGET", key, "n", "ok", "err").array).map(\.string)
            #expect(counts == ["1", "1", "1"])
            #expect(try await redis.send("LLEN", KeyLayout.laneOutcomes(lane: Self.lane)).int == 2)
        }
    }

    @Test func aCallIsAddedInPlaceNotCopied() async throws {
        try await withRedis { _, redis in try Self.addedInPlace(LaneCallRecorder(redis: redis)) }
    }

    static func addedInPlace(_ recorder: LaneCallRecorder) throws {
        recorder.record(lane: Self.lane, .error)
        while let buffer = recorder.pendingOutcomesBuffer(lane: lane), buffer.spare < 1 { recorder.record(lane: lane, .error) }
        // With room left, the next call must land in the same buffer. Copying the lane's
        // pending calls out and back (as the first version did) moved them on every call.
        let before = try #require(recorder.pendingOutcomesBuffer(lane: Self.lane))
        recorder.record(lane: Self.lane, .success(.milliseconds(3)))
        let after = try #require(recorder.pendingOutcomesBuffer(lane: Self.lane))
        #expect(before.address != nil && before.address == after.address)
    }
}

/// RESULT call-record: what recording one provider call costs a worker (both recorders, this build).
@Suite struct CallRecordCostTests {
    @Test func whatRecordingACallCosts() async throws {
        try await withRedis { _, redis in
            let stats = ProviderStats(redis: redis)
            let count = 200_000
            let took = ContinuousClock().measure {
                for index in 0..<count {
                    let latency = Duration.milliseconds(index % 500)
                    stats.record(provider: "mock", latency: latency, rateLimited: false)
                    stats.lanes.record(lane: "mock/m", index % 50 == 0 ? .error : .success(latency))
                }
            }
            print("RESULT call-record: \(Bounded.seconds(took) * 1e9 / Double(count)) ns a call (provider stats and lane recorder)")
            try await stats.flush()
            #expect(try await redis.send("LLEN", KeyLayout.laneOutcomes(lane: "mock/m")).int == KeyLayout.laneOutcomesCap)
        }
    }
}

/// Which lanes' calls are recorded at all.
@Suite struct LaneCallRecordingScopeTests {
    @Test func onlyLanesAMeasuredOrCanaryRouteMayChooseRecordTheirCalls() throws {
        let configuration = try SluiceConfiguration.load(
            yaml: """
                providers:
                  a: { kind: openai, base_url: "http://127.0.0.1:9/v1" }
                  b: { kind: openai, base_url: "http://127.0.0.1:9/v1" }
                routes:
                  fast: { strategy: latency, targets: [a/fast, b/fast] }
                  safe: { targets: [a/safe], canary: { target: b/new, weight: 5 } }
                  split: [ { provider: a, model: s, weight: 1 }, { provider: b, model: s, weight: 1 } ]
                  chain: [a/c, b/c]
                """)
        func records(_ lane: String) throws -> Bool {
            try #require(WorkerLane.configured(lane, in: configuration, concurrency: 4)).recordsCalls
        }
        for lane in ["a/fast", "b/fast", "a/safe", "b/new"] { #expect(try records(lane), "\(lane)") }
        // Weighted, fallback and ordinary lanes: nothing reads their figures, so nothing is recorded.
        for lane in ["a/s", "b/s", "a/c", "a/other", "b"] { #expect(try records(lane) == false, "\(lane)") }
    }
}
