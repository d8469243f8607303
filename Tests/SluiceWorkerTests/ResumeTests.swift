import Foundation
import SluiceCore
import SluiceProviders
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import SluiceWorker
import Synchronization
import Testing

/// Peers cannot stall a lane for ever, and a lane resumes gently after a 429's pause: one probe,
/// then a slow start (issue 11, items 2 and 3).
// In the Makefile's HEAVY list: only when SLUICE_TEST_E2E is set (make test sets it and runs this suite alone).
@Suite(.enabled(if: TestGate.endToEnd, "needs a quiet machine: `make test` runs it alone, or `SLUICE_TEST_E2E=1 swift test --filter ResumeTests`")) struct ResumeTests {
    func granted(_ result: Result<ProviderLimiter.Grant, ProviderLimiter.Refusal>) -> ProviderLimiter.Grant? {
        if case .success(let grant) = result { return grant }
        return nil
    }

    func refused(_ result: Result<ProviderLimiter.Grant, ProviderLimiter.Refusal>) -> String? {
        if case .failure(let refusal) = result { return refusal.reason.rawValue }
        return nil
    }

    /// The limiter's scripts, two processes' limiters against one Redis: after a gentle pause,
    /// one probe for the cluster; its success opens a window of 2, then 4, …; a 429 of the
    /// ramp halves it (once per burst) and asks for a probe again; at the ceiling, full speed.
    @Test func aPauseResumesWithOneProbeThenASlowStartAndA429HalvesIt() async throws {
        try await withRedis { _, redis in
            let one = ProviderLimiter(redis: redis, provider: "p", limits: .init())
            let two = ProviderLimiter(redis: redis, provider: "p", limits: .init())
            let before = try #require(granted(try await one.acquire(want: 32, tokens: 1)))
            #expect(before.count == 32 && before.slots.isEmpty && before.generation.isEmpty, "full speed before any 429")

            // Three seconds long: under the whole suite on 2 cores, 100 ms could pass before the
            // next call, and on a loaded CI machine a second could.
            try await one.pause(for: .seconds(3), gentle: true)
            #expect(try await one.resuming() == .init(probe: true, window: 1))
            #expect(refused(try await two.acquire(want: 32, tokens: 1)) == "paused")
            try await Task.sleep(for: .milliseconds(3100))

            let probe = try #require(granted(try await one.acquire(want: 32, tokens: 1)))
            #expect(probe.count == 1 && probe.slots.count == 1 && !probe.generation.isEmpty)
            #expect(refused(try await two.acquire(want: 32, tokens: 1)) == "ramp", "one probe for the whole cluster")
            // A success of a call that started before the pause says nothing about the provider.
            try await two.release(slots: [], succeeded: true, generation: "", ceiling: 16)
            #expect(try await one.resuming() == .init(probe: true, window: 1))
            try await one.release(slots: probe.slots, succeeded: true, generation: probe.generation, ceiling: 16)
            #expect(try await one.resuming() == .init(probe: false, window: 2))

            let pair = try #require(granted(try await two.acquire(want: 32, tokens: 1)))
            #expect(pair.count == 2)
            #expect(refused(try await one.acquire(want: 32, tokens: 1)) == "ramp")
            for slot in pair.slots { try await two.release(slots: [slot], succeeded: true, generation: pair.generation, ceiling: 16) }
            #expect(try await one.resuming() == .init(probe: false, window: 4))
            let four = try #require(granted(try await one.acquire(want: 32, tokens: 1)))
            #expect(four.count == 4)

            // A 429 in the ramp: the window halves, once for the burst, and a probe comes first.
            try await one.pause(for: .seconds(3), gentle: true, generation: four.generation)
            try await one.pause(for: .seconds(3), gentle: true, generation: four.generation)
            #expect(try await one.resuming() == .init(probe: true, window: 2))
            for slot in four.slots { try await one.release(slots: [slot], succeeded: true, generation: four.generation, ceiling: 16) }
            #expect(try await one.resuming() == .init(probe: true, window: 2), "a call from before the pause is not the probe")
            try await Task.sleep(for: .milliseconds(3100))
            let again = try #require(granted(try await two.acquire(want: 32, tokens: 1)))
            #expect(again.count == 1)
            try await two.release(slots: again.slots, succeeded: true, generation: again.generation, ceiling: 16)
            #expect(try await one.resuming() == .init(probe: false, window: 3))

            // Up to the ceiling, then full speed again.
            var rounds = 0
            while try await one.resuming() != nil, rounds < 20 {
                rounds += 1
                let grant = try #require(granted(try await one.acquire(want: 32, tokens: 1)))
                #expect(grant.count < 16)
                for slot in grant.slots { try await one.release(slots: [slot], succeeded: true, generation: grant.generation, ceiling: 16) }
            }
            #expect(rounds <= 3, "3 → 6 → 12 → 16 ends the ramp")
            let full = try #require(granted(try await two.acquire(want: 32, tokens: 1)))
            #expect(full.count == 32 && full.slots.isEmpty)
        }
    }

    /// Against a provider that answers only 429 with `Retry-After: 2`, the lane's 64 slots go
    /// out once (nothing is known yet); after that, each pause ends with one probe.
    @Test func aProviderThatOnlySays429GetsOneProbePerPause() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            try await withPeerServer({ _ in .rateLimited([("Retry-After", "2")]) }) { peer, base in
                let ids = try await queue.enqueue((0..<200).map { chatJob("hot", $0) }).map(\.id)
                try await withWorkers(queue, [lane("hot", base, concurrency: 64)]) {
                    try await Task.sleep(for: .seconds(7))
                }
                let arrivals = peer.arrivals
                let first = try #require(arrivals.first).at
                // The first window: no probe comes before the first 429's 2 s pause ends (it starts
                // once that 429 is back), so a burst a loaded machine sends slowly still counts as one
                // (1.9 s: a margin for the pause's end rounded to the millisecond and two clocks).
                let burst = arrivals.filter { $0.at - first < .milliseconds(1_900) }.count
                let later = arrivals.count - burst
                #expect(burst <= 64)
                // Three pauses of 2 s end in these 6 s: one probe each (a little slack).
                #expect(later >= 1 && later <= 5, "requests after the first window: \(later) (was 64 per window)")
                print("429 provider: \(burst) requests in the first window, \(later) in the next 6 s")
                #expect(arrivals.allSatisfy { $0.status == 429 })
                let jobs = try await ids.asyncMap { try await queue.get($0) }
                #expect(jobs.allSatisfy { $0?.state == .queued && $0?.attempts == 0 }, "a 429 costs no attempt")
            }
        }
    }

    /// The provider comes back: the probe goes alone, and only its success lets more calls out,
    /// two then four and so on, and every job completes.
    @Test func aSuccessfulProbeRampsBackUpAndTheJobsComplete() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let open = Atomic<Bool>(false)
            try await withPeerServer({ _ in
                open.load(ordering: .relaxed) ? .completion(delay: .milliseconds(150)) : .rateLimited([("retry-after-ms", "500")])
            }) { peer, base in
                let ids = try await queue.enqueue((0..<120).map { chatJob("back", $0) }).map(\.id)
                let jobs = try await withWorkers(queue, [lane("back", base, concurrency: 16)]) {
                    _ = await eventually { peer.count > 16 }  // the first burst and a probe or two
                    open.store(true, ordering: .relaxed)
                    return try await finished(queue, ids)
                }
                #expect(jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map(\.state))")
                let arrivals = peer.arrivals
                let k = try #require(arrivals.firstIndex { $0.status == 200 })
                #expect(arrivals[k].inFlight == 0, "the probe goes alone")
                #expect(arrivals.count > k + 2)
                #expect(arrivals[k + 1].at - arrivals[k].at >= .milliseconds(140), "nothing more until the probe succeeds")
                #expect(arrivals[k + 1].inFlight == 0 && arrivals[k + 2].inFlight <= 1, "then two")
                let most = arrivals[k...].map(\.inFlight).max() ?? 0
                #expect(most >= 8 && most <= 16, "ramped up to the ceiling: \(most)")
                #expect(try await ProviderLimiter(redis: redis, provider: "back", limits: .init()).resuming() == nil)
            }
        }
    }

    /// `retry-after: 1e300` pauses the lane for `max_pause` only, and opens its breaker; once
    /// it passes, a probe reaches the provider again.
    @Test func aHugeRetryAfterIsCappedAtMaxPauseAndOpensTheBreaker() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            try await withPeerServer({ _ in .rateLimited([("retry-after", "1e300"), ("retry-after-ms", "inf")]) }) { peer, base in
                let ids = try await queue.enqueue((0..<3).map { chatJob("stall", $0) }).map(\.id)
                var worker = lane("stall", base, concurrency: 4)
                worker.maxPause = .seconds(3)
                let health = ProviderStateReader(redis: redis)
                let limiter = ProviderLimiter(redis: redis, provider: "stall", limits: .init())
                try await withWorkers(queue, [worker]) {
                    #expect(await eventually { (try? await health.breaker(lane: "stall"))?.state == .open })
                    let breaker = try #require(try await health.breaker(lane: "stall"))
                    #expect(breaker.reason.contains("max_pause"), "\(breaker.reason)")
                    let until = try #require(try await limiter.pausedUntil())
                    let now = UnixMillis.current().value
                    #expect(until.value > now && until.value <= now + 3_100, "paused \(until.value - now) ms, at most max_pause")
                    // Past max_pause (3 s) the lane probes again, not before: it is not stalled for ever.
                    let first = try #require(peer.arrivals.first).at
                    #expect(await eventually(timeout: .seconds(30)) { peer.arrivals.contains { $0.at - first >= .seconds(2) } })
                    let offsets = peer.arrivals.map { $0.at - first }
                    #expect(offsets.filter { $0 < .seconds(1) }.count <= 4, "the first window: \(offsets)")
                    #expect(!offsets.contains { $0 >= .seconds(1) && $0 < .milliseconds(2_800) }, "nothing during the pause: \(offsets)")
                }
                let jobs = try await ids.asyncMap { try await queue.get($0) }
                #expect(jobs.allSatisfy { $0?.attempts == 0 && $0?.state != .failed })
            }
        }
    }
}
