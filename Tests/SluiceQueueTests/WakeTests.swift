import SluiceCore
import SluiceQueue
import SluiceRedis
import Testing

/// The per-lane wake-up: every way a job becomes ready sets the lane's marker, an idle worker
/// blocked on it wakes at once, and the marker never holds more than one member.
@Suite struct WakeTests {
    @Test func aBlockedWaitWakesAsSoonAsAJobIsQueued() async throws {
        try await withQueue { queue, _ in
            // Nothing queued: the wait runs out.
            #expect(try await queue.waitForReady(lane: "lane-a", timeout: .milliseconds(200)) == false)
            async let woken = queue.waitForReady(lane: "lane-a", timeout: .seconds(30))
            try await Task.sleep(for: .milliseconds(100))
            let queued = ContinuousClock.now
            _ = try await queue.enqueue(spec())
            #expect(try await woken)
            #expect(ContinuousClock.now - queued < .seconds(5), "woken by the enqueue, not by the timeout")
            #expect(try await queue.lease(lane: "lane-a", count: 10).count == 1)
        }
    }

    @Test func theMarkerHoldsOneMemberWhateverIsQueued() async throws {
        try await withQueue { queue, _ in
            _ = try await queue.enqueue((0..<50).map { spec(tenant: "t\($0 % 5)", priority: $0 % 3) })
            for _ in 0..<10 { _ = try await queue.enqueue(spec()) }
            #expect(try await queue.redis.send("ZCARD", KeyLayout.marker(lane: "lane-a")).int == 1)
            #expect(try await queue.waitForReady(lane: "lane-a", timeout: .seconds(1)))
            #expect(try await queue.redis.send("EXISTS", KeyLayout.marker(lane: "lane-a")).int == 0)
        }
    }

    @Test func promotedReleasedAndReapedJobsWakeTheLaneToo() async throws {
        let configuration = QueueConfiguration(leaseDuration: .milliseconds(200), retryPolicy: .fixed(.milliseconds(1)))
        try await withQueue(configuration) { queue, _ in
            // Delayed, then promoted by maintenance. (Three seconds ahead: a loaded machine took
            // more than one between computing the time and enqueueing, in a fresh-clone run.)
            let due = UnixMillis.current().value + 3000
            _ = try await queue.enqueue(spec(notBefore: UnixMillis(due)))
            #expect(try await queue.waitForReady(lane: "lane-a", timeout: .milliseconds(10)) == false)
            try await Task.sleep(for: .milliseconds(max(0, due - UnixMillis.current().value) + 100))
            #expect(try await queue.maintain(lane: "lane-a").promoted == 1)
            #expect(try await queue.waitForReady(lane: "lane-a", timeout: .milliseconds(10)))
            // Released by its worker.
            let job = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            _ = try await queue.waitForReady(lane: "lane-a", timeout: .milliseconds(10))
            _ = try await queue.release(job.id, token: job.token, why: "test")
            #expect(try await queue.waitForReady(lane: "lane-a", timeout: .milliseconds(10)))
            // Its lease lost, then reaped.
            _ = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            _ = try await queue.waitForReady(lane: "lane-a", timeout: .milliseconds(10))
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await queue.maintain(lane: "lane-a").requeued == 1)
            #expect(try await queue.waitForReady(lane: "lane-a", timeout: .milliseconds(10)))
        }
    }

    @Test func aLeaseThatLeavesJobsBehindWakesAnotherWorker() async throws {
        try await withQueue { queue, _ in
            _ = try await queue.enqueue((0..<5).map { _ in spec() })
            _ = try await queue.waitForReady(lane: "lane-a", timeout: .milliseconds(10))
            #expect(try await queue.lease(lane: "lane-a", count: 2).count == 2)
            #expect(try await queue.waitForReady(lane: "lane-a", timeout: .milliseconds(10)), "3 left: another worker is woken")
            #expect(try await queue.lease(lane: "lane-a", count: 10).count == 3)
            #expect(try await queue.waitForReady(lane: "lane-a", timeout: .milliseconds(10)) == false, "none left: nobody is woken")
        }
    }

    @Test func aLeaseStoppedByTombstonesWakesTheLaneAgain() async throws {
        try await withQueue { queue, _ in
            // 2,000 cancelled jobs ahead of one live job: a lease of one pops at most 1,004 ids.
            let cancelled = try await queue.enqueue((0..<2000).map { _ in spec() })
            for job in cancelled { _ = try await queue.cancel(job.id) }
            let live = try await queue.enqueue(spec()).id
            var leased: [LeasedJob] = []
            var rounds = 0
            while leased.isEmpty, rounds < 10 {
                // The worker takes the marker, then leases; an empty lease with jobs left behind
                // sets the marker again, so it does not wait for the idle wait's safety net.
                #expect(try await queue.waitForReady(lane: "lane-a", timeout: .milliseconds(10)), "round \(rounds)")
                leased = try await queue.lease(lane: "lane-a", count: 1)
                rounds += 1
            }
            #expect(leased.map(\.id) == [live])
            #expect(rounds > 1, "the tombstones took more than one lease")
        }
    }

    @Test func aWaiterWokenThroughItsOwnKeyLeavesTheMarkerToOthers() async throws {
        try await withQueue { queue, _ in
            let mine = JobQueue.readyWake(lane: "lane-a")
            async let other = queue.waitForReady(lane: "lane-a", timeout: .seconds(30))  // waiting longest
            try await Task.sleep(for: .milliseconds(100))
            let started = ContinuousClock.now
            async let woken = queue.waitForReady(lane: "lane-a", wake: mine, timeout: .seconds(30))
            try await Task.sleep(for: .milliseconds(100))
            try await queue.wakeWaiter(mine)
            #expect(try await woken)
            #expect(ContinuousClock.now - started < .seconds(10), "woken through its own key, not by the timeout")
            // The other waiter is still blocked on the marker; a job wakes it.
            _ = try await queue.enqueue(spec())
            #expect(try await other)
        }
    }
}
