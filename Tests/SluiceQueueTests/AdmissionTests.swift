import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

@Suite struct AdmissionTests {
    @Test func tokenBucketAdmitsTheBurstThenSaysHowLongToWait() async throws {
        try await withQueue { queue, _ in
            // A slow rate (one job per 10 s), so that a loaded machine cannot refill it mid-test.
            let limits = KeyLimits(submitRate: 0.1, submitBurst: 3)
            for _ in 0..<3 { #expect(try await queue.admit(key: 7, count: 1, limits: limits) == .admitted) }
            guard case .rateLimited(let wait) = try await queue.admit(key: 7, count: 1, limits: limits) else {
                Issue.record("the fourth request in a burst of 3 was admitted")
                return
            }
            #expect(wait > 5_000 && wait <= 10_000, "one token at 0.1/s is at most 10 s away: \(wait)")
            #expect(try await queue.admit(key: 7, count: 4, limits: limits) == .overBurst(burst: 3))
            // Another key has its own bucket.
            #expect(try await queue.admit(key: 8, count: 3, limits: limits) == .admitted)
            // The bucket refills with time: at 20/s, one job's token is back within 50 ms.
            let fast = KeyLimits(submitRate: 20, submitBurst: 1)
            #expect(try await queue.admit(key: 9, count: 1, limits: fast) == .admitted)
            try await Task.sleep(for: .milliseconds(60))
            #expect(try await queue.admit(key: 9, count: 1, limits: fast) == .admitted)
            // No limits: admitted without asking Redis.
            #expect(try await queue.admit(key: 7, count: 1_000_000, limits: KeyLimits()) == .admitted)
        }
    }

    @Test func openJobsAreCountedUntilEachFinishesWhicheverWayItEnds() async throws {
        try await withQueue { queue, _ in
            let limits = KeyLimits(maxQueued: 4)
            var ids: [JobID] = []
            for index in 0..<4 {
                ids.append(try await queue.enqueue(spec(idempotencyKey: "k\(index)", maxAttempts: 1), submitter: 42).id)
            }
            // An idempotent replay creates nothing and counts nothing.
            _ = try await queue.enqueue(spec(idempotencyKey: "k0"), submitter: 42)
            #expect(try await queue.openJobs(key: 42) == 4)
            #expect(try await queue.admit(key: 42, count: 1, limits: limits) == .overCap(open: 4))

            let leased = try await queue.lease(lane: "lane-a", count: 3)
            _ = try await queue.complete(leased[0].id, token: leased[0].token, result: [])
            _ = try await queue.fail(leased[1].id, token: leased[1].token, attempt: 1, error: "bad", retryable: false)
            _ = try await queue.cancel(ids[3])  // still queued
            #expect(try await queue.openJobs(key: 42) == 1)  // the one leased, still running
            #expect(try await queue.admit(key: 42, count: 3, limits: limits) == .admitted)
            #expect(try await queue.admit(key: 42, count: 4, limits: limits) == .overCap(open: 1))

            // A lease that runs out with no attempts left: dead, and no longer open.
            _ = try await queue.redis.send("ZADD", KeyLayout.leased(lane: "lane-a"), 0, leased[2].token.split(separator: ".")[0])
            _ = try await queue.maintain(lane: "lane-a")
            #expect(try await queue.get(leased[2].id)?.state == .dead)
            #expect(try await queue.openJobs(key: 42) == 0)
            // Jobs enqueued without a submitter count for nobody.
            _ = try await queue.enqueue(spec())
            #expect(try await queue.redis.send("HLEN", KeyLayout.openJobs).int == 1)
        }
    }
}
