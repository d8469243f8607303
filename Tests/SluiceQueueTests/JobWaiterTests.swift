import SluiceCore
import SluiceQueue
import SluiceTestSupport
import Testing

@Suite struct JobWaiterTests {
    @Test func waiterWakesWhenTheJobCompletes() async throws {
        try await withQueue { queue, _ in
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            let id = try await queue.enqueue(spec()).id
            async let finished = waiter.wait(for: id, timeout: .seconds(60))
            try await Task.sleep(for: .milliseconds(100))
            let lease = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            let completedAt = ContinuousClock.now
            _ = try await queue.complete(id, token: lease.token, result: Array("done".utf8))
            let job = try await finished
            #expect(job?.state == .succeeded)
            #expect(job?.result == Array("done".utf8))
            // Woken by the notification, not by the 60 s timeout (loose: a loaded machine).
            #expect(ContinuousClock.now - completedAt < .seconds(15))
        }
    }

    @Test func waiterReturnsTheUnfinishedJobAtTheTimeout() async throws {
        try await withQueue { queue, _ in
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            let id = try await queue.enqueue(spec()).id
            let started = ContinuousClock.now
            let job = try await waiter.wait(for: id, timeout: .milliseconds(200))
            #expect(job?.state == .queued)
            #expect(ContinuousClock.now - started >= .milliseconds(200))
        }
    }

    @Test func waiterReturnsAtOnceForAFinishedOrUnknownJob() async throws {
        try await withQueue { queue, _ in
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            let id = try await queue.enqueue(spec()).id
            _ = try await queue.cancel(id)
            let started = ContinuousClock.now
            #expect(try await waiter.wait(for: id, timeout: .seconds(60))?.state == .cancelled)
            let unknown = JobID.generate(lane: LaneTag(lane: "lane-a"), unixMillis: 0)
            #expect(try await waiter.wait(for: unknown, timeout: .seconds(60)) == nil)
            #expect(ContinuousClock.now - started < .seconds(30), "at once, not at a 60 s timeout")
        }
    }

    @Test func waiterStillWakesWhenRedisRestartsWhileItWaits() async throws {
        try await withRedis(appendOnly: true) { server, redis in
            let queue = JobQueue(redis: redis)
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            let id = try await queue.enqueue(spec()).id
            async let finished = waiter.wait(for: id, timeout: .seconds(60))
            try await Task.sleep(for: .milliseconds(1100))  // the AOF has the job (appendfsync everysec)
            try await server.restart()
            let lease = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            let completedAt = ContinuousClock.now
            _ = try await queue.complete(id, token: lease.token, result: [7])
            let job = try await finished
            #expect(job?.state == .succeeded)
            #expect(job?.result == [7])
            #expect(ContinuousClock.now - completedAt < .seconds(20), "woken by the completion, not the 60 s timeout")
        }
    }

    @Test func manyWaitersOnManyJobsAllWake() async throws {
        try await withQueue { queue, _ in
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            let ids = try await queue.enqueue((0..<200).map { _ in spec() }).map(\.id)
            let states = try await withThrowingTaskGroup(of: JobState?.self) { group in
                // A hang guard, not a speed check.
                for id in ids { group.addTask { try await waiter.wait(for: id, timeout: .seconds(60))?.state } }
                try await Task.sleep(for: .milliseconds(200))
                for lease in try await queue.lease(lane: "lane-a", count: 200) {
                    _ = try await queue.complete(lease.id, token: lease.token, result: [])
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(states.count == 200)
            #expect(states.allSatisfy { $0 == .succeeded })
        }
    }
}
