import Foundation
import SluiceCore
import SluiceMock
import SluiceQueue
import SluiceTestSupport
@testable import SluiceWorker
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
                // A long safety net: a job found by it rather than by a wake-up would wait 30 s.
                var idle = lane("idle", base)
                idle.idleWait = .seconds(30)
                try await withWorkers(queue, [idle]) {
                    _ = try await finished(queue, [first])
                    for n in 1...3 {
                        try await Task.sleep(for: .milliseconds(300))  // the worker back on its marker
                        let id = try await queue.enqueue(chatJob("idle", n)).id
                        let job = try #require(try await finished(queue, [id]).first)
                        #expect(job.state == .succeeded)
                        let waited = (job.leasedAt?.value ?? .max) - job.createdAt.value
                        // Without a wake-up it would wait for the safety net (30 s); woken, it is a
                        // few ms (the bound is generous for a loaded machine).
                        #expect(waited < 5000, "leased \(waited) ms after it was queued")
                    }
                }
            }
        }
    }

    @Test func aPoolOfIdleWorkersStopsAtOnce() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            try await withMockProvider(MockConfiguration()) { _, base in
                // A long safety net, so that a stop that waited for it could not pass for a wake-up.
                let lanes = (0..<3).map { name -> WorkerLane in
                    var quiet = lane("quiet\(name)", base)
                    quiet.idleWait = .seconds(30)
                    return quiet
                }
                var stopping = ContinuousClock.now
                try await withWorkers(queue, lanes, grace: .seconds(30)) {
                    // Every worker blocked on its marker, a 30 s read begun about now.
                    try await Task.sleep(for: .milliseconds(300))
                    stopping = ContinuousClock.now
                }
                // No calls in flight: no grace period, and no blocked read left to run out (the
                // bound is generous for a loaded machine; waiting out the reads would take 30 s).
                #expect(ContinuousClock.now - stopping < .seconds(10), "stopped after \(ContinuousClock.now - stopping)")
            }
        }
    }

    @Test func aPoolStopsAtOnceBesideAnotherProcesssIdleWorkerOnTheSameLane() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            try await withMockProvider(MockConfiguration()) { _, base in
                var shared = lane("shared", base)
                shared.idleWait = .seconds(30)
                // The other pool's worker has waited longest on the lane's marker: setting the
                // marker would wake it, not the stopping one.
                try await withWorkers(queue, [shared]) {
                    try await Task.sleep(for: .milliseconds(300))
                    var stopping = ContinuousClock.now
                    try await withWorkers(queue, [shared], grace: .seconds(30)) {
                        try await Task.sleep(for: .milliseconds(300))
                        stopping = ContinuousClock.now
                    }
                    #expect(ContinuousClock.now - stopping < .seconds(10), "stopped after \(ContinuousClock.now - stopping)")
                    // The other pool still serves the lane.
                    let id = try await queue.enqueue(chatJob("shared", 1)).id
                    #expect(try await finished(queue, [id], timeout: .seconds(20)).first?.state == .succeeded)
                }
            }
        }
    }

    @Test func aPoolThatDiscoversLanesServesANewLaneAtOnce() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            try await withMockProvider(MockConfiguration()) { _, base in
                let configuration = try SluiceConfiguration.load(yaml: """
                    providers:
                      fresh: { kind: openai, base_url: "\(base)/v1" }
                    """)
                // A long safety net: a lane found by listing rather than by its announcement
                // would wait 30 s.
                try await withWorkers(queue, serving: .discover(configuration, concurrency: 4), lookForLanesEvery: .seconds(30)) {
                    try await Task.sleep(for: .milliseconds(500))  // the pool has listed no lane, and waits
                    let stopping = ContinuousClock.now
                    let id = try await queue.enqueue(chatJob("fresh", 1)).id
                    let job = try #require(try await finished(queue, [id]).first)
                    #expect(job.state == .succeeded)
                    #expect(ContinuousClock.now - stopping < .seconds(10), "served after \(ContinuousClock.now - stopping)")
                }
            }
        }
    }
}
