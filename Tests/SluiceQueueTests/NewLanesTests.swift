import SluiceCore
import SluiceQueue
import SluiceTestSupport
import Testing

/// Worker pools that discover lanes block on `KeyLayout.newLanes` instead of listing the lanes
/// every second: enqueue announces a lane the first time it is used, and only then.
@Suite struct NewLanesTests {
    static func job(_ lane: String) -> JobSpec { JobSpec(lane: lane, payload: Array(#"{"model":"m"}"#.utf8)) }

    @Test func aLaneUsedForTheFirstTimeEndsTheWaitAndAnOldOneDoesNot() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            _ = try await queue.enqueue([Self.job("known")])
            let wake = JobQueue.newLanesWake()
            let cursor = try await queue.newLanesCursor()
            // A lane used before: no announcement, the wait runs out with the same cursor.
            _ = try await queue.enqueue([Self.job("known"), Self.job("known")])
            #expect(try await queue.waitForNewLanes(after: cursor, wake: wake, timeout: .milliseconds(300)) == cursor)
            // A new lane, queued while the wait blocks: it ends long before its 30 s timeout.
            let started = ContinuousClock.now
            async let next = queue.waitForNewLanes(after: cursor, wake: wake, timeout: .seconds(30))
            try await Task.sleep(for: .milliseconds(200))
            _ = try await queue.enqueue([Self.job("brand-new")])
            let moved = try await next
            #expect(moved != cursor)
            #expect(ContinuousClock.now - started < .seconds(10), "waited \(ContinuousClock.now - started)")
            // Announced between the cursor and the wait (the pool lists lanes in between): not missed.
            _ = try await queue.enqueue([Self.job("newer")])
            #expect(try await queue.waitForNewLanes(after: moved, wake: wake, timeout: .seconds(30)) != moved)
        }
    }

    @Test func aWakeUpEndsTheWaitAtOnce() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let wake = JobQueue.newLanesWake()
            let cursor = try await queue.newLanesCursor()
            let started = ContinuousClock.now
            async let next = queue.waitForNewLanes(after: cursor, wake: wake, timeout: .seconds(30))
            try await Task.sleep(for: .milliseconds(200))
            try await queue.wakeNewLanesWaiter(wake)
            #expect(try await next == cursor)  // no lane came
            #expect(ContinuousClock.now - started < .seconds(10), "waited \(ContinuousClock.now - started)")
        }
    }
}
