import Foundation
import SluiceCore
import SluiceMock
import SluiceQueue
import SluiceTestSupport
import Testing

/// Idle workers wait on Redis instead of polling: a job queued to an idle lane is leased at once
/// (not at the 2 s safety net), a delayed one as soon as maintenance promotes it, and a pool
/// whose workers are all idle stops at once.
@Suite struct WakeUpTests {
    @Test func aJobQueuedToAnIdleWorkerIsLeasedAtOnce() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            try await withMockProvider(MockConfiguration()) { _, base in
                // The lane exists (a first job), then its worker goes idle.
                let first = try await queue.enqueue(chatJob("idle", 0)).id
                try await withWorkers(queue, [lane("idle", base)]) {
                    _ = try await finished(queue, [first])
                    for n in 1...3 {
                        try await Task.sleep(for: .milliseconds(2500))  // past the idle wait's safety net
                        let id = try await queue.enqueue(chatJob("idle", n)).id
                        let job = try #require(try await finished(queue, [id]).first)
                        #expect(job.state == .succeeded)
                        let waited = (job.leasedAt?.value ?? .max) - job.createdAt.value
                        // Polling would take up to the idle wait (2 s); woken, it is a few ms
                        // (the bound is generous for a loaded machine).
                        #expect(waited < 1000, "leased \(waited) ms after it was queued")
                    }
                }
            }
        }
    }

    @Test func aPoolOfIdleWorkersStopsAtOnce() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            try await withMockProvider(MockConfiguration()) { _, base in
                let lanes = (0..<3).map { lane("quiet\($0)", base) }
                var stopping = ContinuousClock.now
                try await withWorkers(queue, lanes, grace: .seconds(30)) {
                    // Every worker blocked on its marker, a 2 s read begun about now.
                    try await Task.sleep(for: .milliseconds(300))
                    stopping = ContinuousClock.now
                }
                // No calls in flight: no grace period, and no blocked read left to run out.
                #expect(ContinuousClock.now - stopping < .seconds(1), "stopped after \(ContinuousClock.now - stopping)")
            }
        }
    }
}
