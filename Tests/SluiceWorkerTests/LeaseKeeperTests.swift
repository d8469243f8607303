import Logging
import SluiceCore
import SluiceQueue
import SluiceTestSupport
import Testing

@testable import SluiceWorker

/// The lane's one lease keeper: every call's lease is extended by a single pipelined round trip,
/// one job per lease call, and a lease it no longer holds is dropped, not retried forever.
@Suite struct LeaseKeeperTests {
    private func spec(_ n: Int) -> JobSpec {
        JobSpec(lane: "keep", tenant: "t", payload: Array(#"{"n":\#(n)}"#.utf8))
    }

    /// Leases of 5 s held for 10 s by the keeper (a round every 300 ms: sixteen rounds a lease, so
    /// a loaded machine's delays cannot let one run out; 3 s ran out under a CPU-starved run) are
    /// never reaped; once it stops, they run out and the reaper puts the jobs back in their lane.
    @Test func keptLeasesOutliveTheirDurationAndRunOutOnceDropped() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis, configuration: QueueConfiguration(leaseDuration: .seconds(5)))
            _ = try await queue.enqueue((0..<3).map(spec))
            let first = try await queue.lease(lane: "keep", count: 2)
            let second = try await queue.lease(lane: "keep", count: 1)
            #expect(first.count == 2 && second.count == 1)
            #expect(LeaseKeeper.group(first[0].token) == LeaseKeeper.group(first[1].token))
            #expect(LeaseKeeper.group(first[0].token) != LeaseKeeper.group(second[0].token))
            let keeper = LeaseKeeper(queue: queue, logger: Logger(label: "test"))
            for job in first + second { keeper.hold(job.id, token: job.token) }
            let running = Task { await keeper.run(every: .milliseconds(300)) }
            for _ in 0..<10 {
                try await Task.sleep(for: .seconds(1))
                _ = try await queue.maintain(lane: "keep")
            }
            for job in first + second {
                #expect(try await queue.get(job.id)?.state == .leased, "kept past its 5 s lease")
            }
            running.cancel()
            await running.value
            try await Task.sleep(for: .milliseconds(5500))
            let report = try await queue.maintain(lane: "keep")
            #expect(report.requeued == 3, "no longer kept: the leases ran out")
            #expect(try await queue.counts(lane: "keep").ready == 3)
        }
    }

    /// A job finished (its lease gone) while still held: whichever job of its lease call a round
    /// picks, the lease call stays alive through the other; once every job's lease is gone, one
    /// round finds each lost (the next job of the call tried at once) and keeps none of them.
    @Test func aLostLeaseIsDroppedAndItsLeaseCallKeptThroughAnother() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis, configuration: QueueConfiguration(leaseDuration: .seconds(5)))
            _ = try await queue.enqueue((0..<2).map(spec))
            let jobs = try await queue.lease(lane: "keep", count: 2)
            let keeper = LeaseKeeper(queue: queue, logger: Logger(label: "test"))
            for job in jobs { keeper.hold(job.id, token: job.token) }
            _ = try await queue.complete(jobs[0].id, token: jobs[0].token, result: Array("{}".utf8))
            for _ in 0..<8 {
                await keeper.extendAll()
                try await Task.sleep(for: .milliseconds(800))  // 6.4 s in all: past the 5 s lease
                _ = try await queue.maintain(lane: "keep")
            }
            #expect(try await queue.get(jobs[1].id)?.state == .leased, "its lease call kept through the other job")
            #expect(try await queue.get(jobs[0].id)?.state == .succeeded)
            _ = try await queue.complete(jobs[1].id, token: jobs[1].token, result: Array("{}".utf8))
            await keeper.extendAll()
            #expect(keeper.count == 0, "both leases found lost in one round")
        }
    }
}
