import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

@Suite struct JobLifecycleTests {
    @Test func enqueuedJobIsLeasedCompletedAndReadBack() async throws {
        try await withQueue { queue, _ in
            let submitted = try await queue.enqueue(spec(payload: #"{"model":"demo"}"#))
            #expect(submitted.created)
            var job = try #require(try await queue.get(submitted.id))
            #expect(job.state == .queued)
            #expect(job.attempts == 0)

            let leases = try await queue.lease(lane: "lane-a", count: 10)
            #expect(leases.map(\.id) == [submitted.id])
            #expect(leases[0].attempt == 1)
            #expect(leases[0].payload == Array(#"{"model":"demo"}"#.utf8))
            #expect(try await queue.get(submitted.id)?.state == .leased)

            let outcome = try await queue.complete(submitted.id, token: leases[0].token, result: Array("ok".utf8))
            #expect(outcome == .recorded(.succeeded))
            job = try #require(try await queue.get(submitted.id))
            #expect(job.state == .succeeded)
            #expect(job.result == Array("ok".utf8))
            #expect(job.finishedAt != nil)
            #expect(try await queue.lease(lane: "lane-a", count: 10).isEmpty)
            #expect(try await structuralProblems(queue: queue, lane: "lane-a", jobs: [submitted.id]) == [])
        }
    }

    @Test func binaryPayloadAndResultRoundTrip() async throws {
        try await withQueue { queue, _ in
            let bytes: [UInt8] = [0, 255, 0xC3, 0x28, 0, 10, 13] + Array(0...255)
            var withBinary = spec()
            withBinary.payload = bytes
            withBinary.metadata = [0, 1, 2, 0xFF]
            let id = try await queue.enqueue(withBinary).id
            let lease = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            #expect(lease.payload == bytes)
            #expect(lease.metadata == [0, 1, 2, 0xFF])
            _ = try await queue.complete(id, token: lease.token, result: bytes.reversed())
            #expect(try await queue.get(id)?.result == bytes.reversed())
        }
    }

    @Test func expiredLeaseIsRequeuedAndCompletesOnce() async throws {
        try await withQueue { queue, _ in
            let id = try await queue.enqueue(spec()).id
            // Worker 1 leases and vanishes.
            let first = try #require(try await queue.lease(lane: "lane-a", count: 1, duration: .milliseconds(50)).first)
            try await Task.sleep(for: .milliseconds(120))
            let report = try await queue.maintain(lane: "lane-a")
            #expect(report.requeued == 1)
            #expect(try await queue.get(id)?.state == .queued)

            // Worker 2 gets it as attempt 2 and completes it.
            let second = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            #expect(second.id == id)
            #expect(second.attempt == 2)
            #expect(second.token != first.token)
            #expect(try await queue.complete(id, token: second.token, result: Array("second".utf8)) == .recorded(.succeeded))

            // Worker 1 comes back late: refused, and the result stays the second's.
            #expect(try await queue.complete(id, token: first.token, result: Array("first".utf8)) == .refused(current: .succeeded))
            #expect(try await queue.fail(id, token: first.token, attempt: 1, error: "late", retryable: true) == .refused(current: .succeeded))
            #expect(try await queue.heartbeat(id, token: first.token) == .lost(current: .succeeded))
            let job = try #require(try await queue.get(id))
            #expect(job.result == Array("second".utf8))
            #expect(job.attempts == 2)
            let transitions = try await queue.events(lane: "lane-a").filter { $0.job == id }.map { "\($0.from?.rawValue ?? "")>\($0.to.rawValue)" }
            #expect(transitions == [">queued", "queued>leased", "leased>queued", "queued>leased", "leased>succeeded"])
            #expect(try await structuralProblems(queue: queue, lane: "lane-a", jobs: [id]) == [])
        }
    }

    @Test func heartbeatKeepsTheLeaseFromBeingReaped() async throws {
        try await withQueue { queue, _ in
            let id = try await queue.enqueue(spec()).id
            // Each sleep outlasts half the lease; without the heartbeats the lease would be gone.
            let lease = try #require(try await queue.lease(lane: "lane-a", count: 1, duration: .milliseconds(1500)).first)
            for _ in 0..<3 {
                try await Task.sleep(for: .milliseconds(800))
                guard case .extended(_, let cancelRequested) = try await queue.heartbeat(id, token: lease.token, duration: .milliseconds(1500)) else {
                    Issue.record("heartbeat lost the lease")
                    return
                }
                #expect(!cancelRequested)
                #expect(try await queue.maintain(lane: "lane-a").requeued == 0)
            }
            #expect(try await queue.get(id)?.state == .leased)
        }
    }

    @Test func heartbeatOfOneJobExtendsItsWholeLeaseCall() async throws {
        try await withQueue { queue, _ in
            let ids = try await queue.enqueue((0..<3).map { _ in spec() }).map(\.id)
            let leases = try await queue.lease(lane: "lane-a", count: 3, duration: .milliseconds(3000))
            #expect(Set(leases.map(\.id)) == Set(ids))
            try await Task.sleep(for: .milliseconds(2000))
            // Extended by 6 s: a loaded machine's delays cannot run it out before the check.
            _ = try await queue.heartbeat(leases[0].id, token: leases[0].token, duration: .milliseconds(6000))
            try await Task.sleep(for: .milliseconds(1500))  // past the first deadline, within the extended one
            #expect(try await queue.maintain(lane: "lane-a").requeued == 0)
            for lease in leases { #expect(try await queue.get(lease.id)?.state == .leased) }
            #expect(try await structuralProblems(queue: queue, lane: "lane-a", jobs: ids) == [])
        }
    }

    @Test func expiredLeaseCallRequeuesOnlyTheJobsItStillHolds() async throws {
        try await withQueue { queue, _ in
            let ids = try await queue.enqueue((0..<4).map { _ in spec() }).map(\.id)
            let leases = try await queue.lease(lane: "lane-a", count: 4, duration: .milliseconds(50))
            _ = try await queue.complete(leases[0].id, token: leases[0].token, result: [1])
            _ = try await queue.fail(leases[1].id, token: leases[1].token, attempt: 1, error: "4xx", retryable: false)
            try await Task.sleep(for: .milliseconds(120))
            let report = try await queue.maintain(lane: "lane-a")
            #expect(report.requeued == 2)
            #expect(try await queue.get(leases[0].id)?.state == .succeeded)
            #expect(try await queue.get(leases[1].id)?.state == .failed)
            #expect(try await queue.get(leases[2].id)?.state == .queued)
            #expect(try await queue.counts(lane: "lane-a") == LaneCounts(ready: 2, leased: 0, delayed: 0))
            #expect(try await structuralProblems(queue: queue, lane: "lane-a", jobs: ids) == [])
        }
    }

    @Test func retryableFailureWaitsThenRunsAgainUntilAttemptsAreUsedUp() async throws {
        // The backoff is long enough that "not before the backoff" holds on a loaded machine.
        let configuration = QueueConfiguration(retryPolicy: .fixed(.milliseconds(1500)))
        try await withQueue(configuration) { queue, _ in
            let id = try await queue.enqueue(spec(maxAttempts: 2)).id
            let first = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            #expect(try await queue.fail(id, token: first.token, attempt: 1, error: "503 from provider", retryable: true) == .recorded(.retryWait))
            #expect(try await queue.get(id)?.state == .retryWait)
            #expect(try await queue.get(id)?.error == "503 from provider")
            // Not ready before the backoff.
            #expect(try await queue.maintain(lane: "lane-a").promoted == 0)
            #expect(try await queue.lease(lane: "lane-a", count: 1).isEmpty)
            try await Task.sleep(for: .milliseconds(1600))
            #expect(try await queue.maintain(lane: "lane-a").promoted == 1)
            let second = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            #expect(second.attempt == 2)
            #expect(try await queue.fail(id, token: second.token, attempt: 2, error: "503 again", retryable: true) == .recorded(.dead))
            #expect(try await queue.get(id)?.state == .dead)
            #expect(try await structuralProblems(queue: queue, lane: "lane-a", jobs: [id]) == [])
        }
    }

    @Test func fatalFailureIsFailedAtOnce() async throws {
        try await withQueue { queue, _ in
            let id = try await queue.enqueue(spec(maxAttempts: 5)).id
            let lease = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            #expect(try await queue.fail(id, token: lease.token, attempt: 1, error: "400 bad request", retryable: false) == .recorded(.failed))
            let job = try #require(try await queue.get(id))
            #expect(job.state == .failed)
            #expect(job.error == "400 bad request")
        }
    }

    @Test func leaseLostToExpiryOnLastAttemptIsDead() async throws {
        try await withQueue { queue, _ in
            let id = try await queue.enqueue(spec(maxAttempts: 1)).id
            _ = try await queue.lease(lane: "lane-a", count: 1, duration: .milliseconds(20))
            try await Task.sleep(for: .milliseconds(60))
            #expect(try await queue.maintain(lane: "lane-a").dead == 1)
            let job = try #require(try await queue.get(id))
            #expect(job.state == .dead)
            #expect(job.error == "lease expired")
        }
    }

    @Test func cancelStopsQueuedAndDelayedJobsAtOnce() async throws {
        try await withQueue { queue, _ in
            let queued = try await queue.enqueue(spec()).id
            let delayed = try await queue.enqueue(spec(notBefore: UnixMillis.current() + .seconds(60))).id
            #expect(try await queue.cancel(queued) == .cancelled)
            #expect(try await queue.cancel(delayed) == .cancelled)
            #expect(try await queue.get(queued)?.state == .cancelled)
            #expect(try await queue.get(delayed)?.state == .cancelled)
            #expect(try await queue.cancel(queued) == .alreadyFinished(.cancelled))
            #expect(try await queue.lease(lane: "lane-a", count: 10).isEmpty)
            #expect(try await structuralProblems(queue: queue, lane: "lane-a", jobs: [queued, delayed]) == [])
            let unknown = JobID.generate(lane: LaneTag(lane: "lane-a"), unixMillis: 0)
            #expect(try await queue.cancel(unknown) == .notFound)
        }
    }

    @Test func cancelOfLeasedJobIsRecordedAtTheHoldersNextReport() async throws {
        try await withQueue { queue, _ in
            let id = try await queue.enqueue(spec()).id
            let lease = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            #expect(try await queue.cancel(id) == .cancelRequested)
            #expect(try await queue.get(id)?.state == .leased)
            guard case .extended(_, let cancelRequested) = try await queue.heartbeat(id, token: lease.token) else {
                Issue.record("heartbeat lost the lease")
                return
            }
            #expect(cancelRequested)
            #expect(try await queue.complete(id, token: lease.token, result: Array("late".utf8)) == .recorded(.cancelled))
            let job = try #require(try await queue.get(id))
            #expect(job.state == .cancelled)
            #expect(job.result == nil)
        }
    }

    @Test func delayedJobBecomesReadyAtItsTime() async throws {
        try await withQueue { queue, _ in
            let far = try await queue.enqueue(spec(notBefore: UnixMillis.current() + .seconds(60))).id
            let near = try await queue.enqueue(spec(notBefore: UnixMillis.current() + .milliseconds(150))).id
            #expect(try await queue.get(far)?.state == .delayed)
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await queue.maintain(lane: "lane-a").promoted == 1)
            #expect(try await queue.lease(lane: "lane-a", count: 5).map(\.id) == [near])
            #expect(try await queue.get(far)?.state == .delayed)
            #expect(try await structuralProblems(queue: queue, lane: "lane-a", jobs: [far, near]) == [])
        }
    }

    @Test func jobPastItsDeadlineExpiresInsteadOfStarting() async throws {
        try await withQueue { queue, _ in
            // Six seconds: enough for the enqueues and the lease even on a loaded machine (2 s was
            // not, once, in a fresh-clone run of the whole suite on 2 cores).
            let soon = UnixMillis.current() + .seconds(6)
            let waiting = try await queue.enqueue(spec(deadline: soon)).id
            let started = try await queue.enqueue(spec(tenant: "t0", priority: 1, deadline: soon)).id
            let delayedFar = try await queue.enqueue(
                spec(notBefore: UnixMillis.current() + .seconds(60), deadline: UnixMillis.current() + .seconds(61))).id
            let lease = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            #expect(lease.id == started)
            try await Task.sleep(until: .now + .milliseconds(max(0, soon.value - UnixMillis.current().value) + 100))
            // The job not started by its deadline expires; the started one finishes normally.
            #expect(try await queue.maintain(lane: "lane-a").expired == 1)
            #expect(try await queue.get(waiting)?.state == .expired)
            #expect(try await queue.get(started)?.state == .leased)
            #expect(try await queue.complete(started, token: lease.token, result: []) == .recorded(.succeeded))
            #expect(try await queue.get(delayedFar)?.state == .delayed)
            #expect(try await structuralProblems(queue: queue, lane: "lane-a", jobs: [waiting, started, delayedFar]) == [])
        }
    }

    @Test func leaseSkipsJobsWhoseDeadlinePassedBeforeTheExpirerRan() async throws {
        try await withQueue { queue, _ in
            let late = try await queue.enqueue(spec(deadline: UnixMillis.current() + .milliseconds(30))).id
            let fine = try await queue.enqueue(spec()).id
            try await Task.sleep(for: .milliseconds(60))
            let leases = try await queue.lease(lane: "lane-a", count: 5)
            #expect(leases.map(\.id) == [fine])
            #expect(try await queue.get(late)?.state == .expired)
        }
    }

    @Test func priorityComesFirstThenFifo() async throws {
        try await withQueue { queue, _ in
            let low = try await queue.enqueue(spec(priority: -5)).id
            let normal1 = try await queue.enqueue(spec()).id
            let high = try await queue.enqueue(spec(priority: 10)).id
            let normal2 = try await queue.enqueue(spec()).id
            let order = try await queue.lease(lane: "lane-a", count: 10).map(\.id)
            #expect(order == [high, normal1, normal2, low])
        }
    }

    @Test func highPriorityJobOfAnotherTenantGoesFirst() async throws {
        try await withQueue { queue, _ in
            _ = try await queue.enqueue((0..<5).map { _ in spec(tenant: "bulk") })
            let urgent = try await queue.enqueue(spec(tenant: "app", priority: 50)).id
            #expect(try await queue.lease(lane: "lane-a", count: 1).first?.id == urgent)
        }
    }

    @Test func resubmissionWithSameIdempotencyKeyReturnsTheSameJob() async throws {
        try await withQueue { queue, _ in
            let first = try await queue.enqueue(spec(idempotencyKey: "order-42"))
            let again = try await queue.enqueue(spec(idempotencyKey: "order-42"))
            let otherTenant = try await queue.enqueue(spec(tenant: "t2", idempotencyKey: "order-42"))
            #expect(first.created)
            #expect(again == EnqueueResult(id: first.id, created: false))
            #expect(otherTenant.created)
            #expect(otherTenant.id != first.id)
            // Within one bulk call, too.
            let bulk = try await queue.enqueue([spec(idempotencyKey: "k"), spec(idempotencyKey: "k")])
            #expect(bulk[0].created && !bulk[1].created && bulk[0].id == bulk[1].id)
            #expect(try await queue.counts(lane: "lane-a").ready == 3)
        }
    }

    @Test func fiftyConcurrentResubmissionsCreateExactlyOneJob() async throws {
        try await withQueue { queue, _ in
            let results = try await withThrowingTaskGroup(of: EnqueueResult.self) { group in
                for _ in 0..<50 { group.addTask { try await queue.enqueue(spec(idempotencyKey: "same")) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter(\.created).count == 1)
            #expect(Set(results.map(\.id)).count == 1)
            #expect(try await queue.counts(lane: "lane-a").ready == 1)
        }
    }

    @Test func invalidSpecIsRefusedAndNothingIsEnqueued() async throws {
        try await withQueue { queue, _ in
            await #expect(throws: QueueError.invalidSpec(index: 1, .invalid(field: "priority", reason: "must be within -100...100"))) {
                try await queue.enqueue([spec(), spec(priority: 1000)])
            }
            let lanes = try await queue.lanes()
            let ready = try await queue.counts(lane: "lane-a").ready
            #expect(lanes.isEmpty)
            #expect(ready == 0)
        }
    }

    @Test func bulkEnqueueOfThousandsAcrossLanes() async throws {
        try await withQueue { queue, _ in
            let specs = (0..<5000).map { spec($0 % 2 == 0 ? "lane-a" : "lane-b", tenant: "t\($0 % 7)", payload: "job \($0)") }
            let results = try await queue.enqueue(specs)
            #expect(results.count == 5000)
            #expect(Set(results.map(\.id)).count == 5000)
            #expect(try await queue.counts(lane: "lane-a").ready == 2500)
            #expect(try await queue.counts(lane: "lane-b").ready == 2500)
            #expect(try await queue.lanes() == ["lane-a", "lane-b"])
            // Each id's lane tag routes to its lane's keys.
            #expect(try await queue.get(results[1].id)?.payload == Array("job 1".utf8))
            #expect(try await queue.get(results[1].id)?.lane == "lane-b")
        }
    }

    @Test func mixedBulkRoundTripsEveryField() async throws {
        try await withQueue { queue, _ in
            let later = UnixMillis.current() + .seconds(60)
            var special = spec(tenant: "t2", priority: 7, payload: "special", idempotencyKey: "k-1", deadline: later, maxAttempts: 9)
            special.metadata = Array(#"{"trace":"abc"}"#.utf8)
            let delayed = spec(tenant: "t1", payload: "delayed", notBefore: later)
            let specs = [spec(payload: "plain-1"), special, spec(payload: "plain-2"), delayed, spec(priority: -3, payload: "low")]
            let ids = try await queue.enqueue(specs).map(\.id)
            let jobs = try await ids.asyncMap { try #require(try await queue.get($0)) }
            #expect(jobs.map { String(decoding: $0.payload, as: UTF8.self) } == ["plain-1", "special", "plain-2", "delayed", "low"])
            #expect(jobs[0].tenant == "t1" && jobs[0].priority == 0 && jobs[0].maxAttempts == 3 && jobs[0].state == .queued)
            #expect(jobs[1].tenant == "t2" && jobs[1].priority == 7 && jobs[1].maxAttempts == 9)
            #expect(jobs[1].idempotencyKey == "k-1" && jobs[1].deadline == later)
            #expect(jobs[1].metadata == Array(#"{"trace":"abc"}"#.utf8))
            #expect(jobs[3].state == .delayed && jobs[3].notBefore == later)
            #expect(jobs[4].priority == -3)
            // Priority order across the mixed chunk: 7, then the 0s in order, then -3.
            let order = try await queue.lease(lane: "lane-a", count: 10).map(\.id)
            #expect(order == [ids[1], ids[0], ids[2], ids[4]])
        }
    }

    @Test func scriptsRecoverAfterScriptFlush() async throws {
        try await withQueue { queue, _ in
            _ = try await queue.enqueue(spec())
            try await queue.redis.send("SCRIPT", "FLUSH")
            _ = try await queue.enqueue([spec(), spec()])  // the pipelined bulk path
            try await queue.redis.send("SCRIPT", "FLUSH")
            let leases = try await queue.lease(lane: "lane-a", count: 10)
            #expect(leases.count == 3)
            try await queue.redis.send("SCRIPT", "FLUSH")
            #expect(try await queue.complete(leases[0].id, token: leases[0].token, result: []) == .recorded(.succeeded))
        }
    }

    @Test func concurrentBulkEnqueuesRightAfterScriptFlushEnqueueEachJobOnce() async throws {
        // Small chunks: many script calls per pipeline, some of which race the script's reload.
        try await withQueue(QueueConfiguration(enqueueChunk: 10)) { queue, _ in
            for round in 0..<3 {
                try await queue.redis.send("SCRIPT", "FLUSH")
                let ids = try await withThrowingTaskGroup(of: [JobID].self) { group in
                    for _ in 0..<6 {
                        group.addTask { try await queue.enqueue((0..<500).map { _ in spec() }).map(\.id) }
                    }
                    return try await group.reduce(into: []) { $0 += $1 }
                }
                #expect(Set(ids).count == 3000)
                #expect(try await queue.counts(lane: "lane-a").ready == 3000 * (round + 1))
            }
            let all = try await queue.events(lane: "lane-a", count: 1_000_000).filter { $0.to == .queued }.map(\.job)
            #expect(all.count == 9000)
            #expect(try await structuralProblems(queue: queue, lane: "lane-a", jobs: all) == [])
        }
    }

    @Test func everyTransitionIsInTheEventStream() async throws {
        try await withQueue { queue, _ in
            let id = try await queue.enqueue(spec()).id
            let lease = try #require(try await queue.lease(lane: "lane-a", count: 1).first)
            _ = try await queue.fail(id, token: lease.token, attempt: 1, error: "boom", retryable: true)
            try await Task.sleep(for: .milliseconds(10))
            _ = try await queue.maintain(lane: "lane-a")
            let events = try await queue.events(lane: "lane-a").filter { $0.job == id }
            #expect(events.map(\.to) == [.queued, .leased, .retryWait, .queued])
            #expect(events[2].info == "boom")
            #expect(events.allSatisfy { $0.at.value > 0 && $0.lane == "lane-a" })
            // The cursor continues after a given entry.
            let rest = try await queue.events(lane: "lane-a", after: events[1].streamID)
            #expect(rest.map(\.to) == [.retryWait, .queued])
        }
    }

    @Test func redisRestartMidTestDoesNotBreakTheQueue() async throws {
        try await withRedis(appendOnly: true) { server, redis in
            let queue = JobQueue(redis: redis)
            let ids = try await queue.enqueue((0..<100).map { _ in spec() }).map(\.id)
            try await Task.sleep(for: .milliseconds(1100))  // appendfsync everysec
            try await server.restart()
            // The AOF kept the jobs; the client reconnected; scripts were reloaded on NOSCRIPT.
            let leases = try await queue.lease(lane: "lane-a", count: 200)
            #expect(Set(leases.map(\.id)) == Set(ids))
            for lease in leases { _ = try await queue.complete(lease.id, token: lease.token, result: []) }
            #expect(try await structuralProblems(queue: queue, lane: "lane-a", jobs: ids) == [])
        }
    }
}

@Suite struct GroupCommitTests {
    @Test func concurrentCompletesCoalesceIntoFewScriptCalls() async throws {
        try await withQueue { queue, _ in
            let ids = try await queue.enqueue((0..<1000).map { spec(tenant: "t\($0 % 4)") }).map(\.id)
            let leases = try await queue.lease(lane: "lane-a", count: 1000)
            try await queue.redis.send("CONFIG", "RESETSTAT")
            let outcomes = try await withThrowingTaskGroup(of: ReportOutcome.self) { group in
                for lease in leases {
                    group.addTask { try await queue.complete(lease.id, token: lease.token, result: Array(lease.id.rawValue.utf8)) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.count == 1000)
            #expect(outcomes.allSatisfy { $0 == .recorded(.succeeded) })
            let stats = try await queue.redis.send("INFO", "commandstats").string ?? ""
            let calls = stats.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cmdstat_evalsha:") }
                .flatMap { $0.split(separator: "=").dropFirst().first?.split(separator: ",").first }.flatMap { Int($0) } ?? 0
            #expect(calls >= 4 && calls <= 200, "1000 completes took \(calls) script calls")
            // Each job got its own result, not a neighbour's.
            for id in ids.prefix(50) { #expect(try await queue.get(id)?.result == Array(id.rawValue.utf8)) }
        }
    }

    @Test func staleTokenInABatchIsRefusedWithoutHarmingItsNeighbours() async throws {
        try await withQueue { queue, _ in
            _ = try await queue.enqueue((0..<20).map { _ in spec() })
            let leases = try await queue.lease(lane: "lane-a", count: 20)
            let outcomes = try await withThrowingTaskGroup(of: (Int, ReportOutcome).self) { group in
                for (index, lease) in leases.enumerated() {
                    let token = index % 5 == 0 ? "stale-\(index)" : lease.token
                    group.addTask { (index, try await queue.complete(lease.id, token: token, result: [])) }
                }
                return try await group.reduce(into: [Int: ReportOutcome]()) { $0[$1.0] = $1.1 }
            }
            for (index, outcome) in outcomes {
                #expect(outcome == (index % 5 == 0 ? .refused(current: .leased) : .recorded(.succeeded)))
            }
            #expect(try await queue.counts(lane: "lane-a").leased == 4)
        }
    }
}

@Suite struct LaneStatsTests {
    @Test func oldestReadySkipsTombstonesAndSpansTenants() async throws {
        try await withQueue { queue, _ in
            let first = try await queue.enqueue(spec(tenant: "a")).id
            try await Task.sleep(for: .milliseconds(20))
            _ = try await queue.enqueue(spec(tenant: "b"))
            let second = try #require(try await queue.get(try await queue.enqueue(spec(tenant: "a")).id))
            var stats = try await queue.stats(lane: "lane-a")
            #expect(stats.counts.ready == 3)
            #expect(stats.oldestReadyCreatedAt == (try await queue.get(first))?.createdAt)
            _ = try await queue.cancel(first)  // now a tombstone at the head of a's list
            stats = try await queue.stats(lane: "lane-a")
            #expect(stats.counts.ready == 2)
            #expect(stats.oldestReadyCreatedAt! <= second.createdAt)
            #expect(stats.oldestReadyCreatedAt! > (try await queue.get(first))!.createdAt)
            _ = try await queue.lease(lane: "lane-a", count: 10)
            stats = try await queue.stats(lane: "lane-a")
            #expect(stats.oldestReadyCreatedAt == nil && stats.counts.leased == 2)
        }
    }
}
