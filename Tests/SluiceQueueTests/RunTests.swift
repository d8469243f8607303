import Foundation
import Logging
import SluiceCore
@testable import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Synchronization
import Testing

/// Pipeline runs on a real Redis: the runs stream written by the scripts that end a step's job,
/// the advancer creating each step once (also when it is run twice, concurrently, or again after
/// a crash between its moves), cancel, and the run's webhook.
@Suite struct RunTests {
    static let chain = """
        {"name": "chain", "steps": [
          {"name": "a", "lane": "lane-a", "request": {"q": "{{ input.text }}"}},
          {"name": "b", "lane": "lane-a", "request": {"q": "after {{ steps.a.output }}"}},
          {"name": "c", "lane": "lane-a", "request": {"q": "after {{ steps.b.output }}"}}]}
        """

    static let fanOut = """
        {"name": "fan", "steps": [
          {"name": "each", "lane": "lane-a", "for_each": "input.items", "request": {"q": "{{ item }}"}},
          {"name": "join", "lane": "lane-a", "request": {"q": "{{ steps.each.outputs | join }}"}}]}
        """

    /// Queued webhooks, as the webhook store would get them.
    final class Outbox: WebhookOutbox, Sendable {
        let created = Mutex<[(subject: String, type: String, body: [UInt8])]>([])
        func create(subject: String, url: String, key: Int64?, type: String, body: [UInt8]) async throws -> Bool {
            created.withLock { $0.append((subject, type, body)) }
            return true
        }
    }

    static func advancer(_ queue: JobQueue, outbox: Outbox? = nil) -> RunAdvancer {
        RunAdvancer(
            queue: queue, outbox: outbox, directory: { ModelDirectory(providers: [:], routes: [:]) },
            logger: Logger(label: "test.runs"))
    }

    static func create(_ queue: JobQueue, _ definition: String, input: String, callback: String? = nil) async throws -> String {
        let pipeline = try Pipeline(json: Array(definition.utf8))
        return try await queue.createRun(
            JobQueue.NewRun(pipeline: pipeline.name, definition: pipeline.jsonBytes, input: Array(input.utf8), callbackURL: callback),
            tenant: "t1", submitter: 7
        ).id
    }

    static func answer(_ text: String) -> [UInt8] {
        Array(#"{"choices":[{"message":{"role":"assistant","content":"\#(text)"}}]}"#.utf8)
    }

    /// Leases every ready job of lane-a and answers each with `answer(request's q)`.
    @discardableResult
    static func answerAll(_ queue: JobQueue, transform: (String) -> String = { "done " + $0 }) async throws -> [String] {
        var asked: [String] = []
        for job in try await queue.lease(lane: "lane-a", count: 1000) {
            let q = (try? JSONValue(parsing: job.payload))?["q"]?.stringValue ?? ""
            asked.append(q)
            _ = try await queue.complete(job.id, token: job.token, result: answer(transform(q)))
        }
        return asked
    }

    /// A fan-out run of two items, its step `each` recorded `creating` in `lane` (move 1 of a
    /// step's creation, as the advancer does it).
    static func creatingFanOut(_ queue: JobQueue, lane: String = "lane-a") async throws -> String {
        let id = try await create(queue, fanOut, input: #"{"items": ["x", "y"]}"#)
        let run = try #require(try await queue.run(id))
        _ = try await queue.recordRun(
            id, version: run.version, fields: [("s:each", Array("creating".utf8)), ("l:each", Array(lane.utf8)), ("c:each", Array("2".utf8))])
        return id
    }

    static func runEntries(_ queue: JobQueue) async throws -> [[String: String]] {
        let reply = try await queue.redis.send("XRANGE", KeyLayout.runEvents, "-", "+")
        return (reply.array ?? []).compactMap { entry in
            guard let flat = entry.array?.last?.array else { return nil }
            var fields: [String: String] = [:]
            for index in stride(from: 0, to: flat.count - 1, by: 2) { fields[flat[index].string ?? ""] = flat[index + 1].string }
            return fields
        }
    }

    @Test func everyScriptThatEndsAStepJobAddsItToTheRunsStreamAndPlainJobsAddNothing() async throws {
        try await withQueue { queue, _ in
            func stepSpec(_ item: Int) -> JobSpec {
                var job = spec(maxAttempts: 1)
                job.run = PipelineRun.jobTag(run: "run_X", step: "s", item: item)
                return job
            }
            // Completed, failed, cancelled while queued, cancelled while leased, reaped dead.
            let ids = try await queue.enqueue((0..<5).map(stepSpec)).map(\.id)
            _ = try await queue.enqueue(spec())  // a plain job
            try await queue.cancel(ids[2]).ignore()
            let leased = try await queue.lease(lane: "lane-a", count: 10, duration: .milliseconds(200))
            func token(_ id: JobID) -> String { leased.first { $0.id == id }!.token }
            _ = try await queue.complete(ids[0], token: token(ids[0]), result: Array("ok".utf8))
            _ = try await queue.fail(ids[1], token: token(ids[1]), attempt: 1, error: "bad request", retryable: false)
            try await queue.cancel(ids[3]).ignore()
            _ = try await queue.complete(ids[3], token: token(ids[3]), result: Array("late".utf8))
            try await Task.sleep(for: .milliseconds(300))
            _ = try await queue.maintain(lane: "lane-a")
            // The plain job was leased too and reaped back (it has attempts left): no entry for it.
            let entries = try await Self.runEntries(queue)
            let byJob = Dictionary(entries.map { ($0["job"] ?? "", $0["to"] ?? "") }, uniquingKeysWith: { a, _ in a })
            #expect(byJob[ids[0].rawValue] == "succeeded")
            #expect(byJob[ids[1].rawValue] == "failed")
            #expect(byJob[ids[2].rawValue] == "cancelled")
            #expect(byJob[ids[3].rawValue] == "cancelled")
            #expect(byJob[ids[4].rawValue] == "dead")
            #expect(entries.count == 5)
            #expect(entries.allSatisfy { $0["run"]?.hasPrefix("run_X s ") == true })
        }
    }

    @Test func aChainRunsStepByStepToItsOutput() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            let id = try await Self.create(queue, Self.chain, input: #"{"text": "hi"}"#)
            #expect(try await queue.run(id)?.status == .queued)
            try await advancer.advance(id)
            #expect(try await queue.run(id)?.status == .running)
            #expect(try await Self.answerAll(queue) == ["hi"])
            try await advancer.advance(id)
            #expect(try await Self.answerAll(queue) == ["after done hi"])
            try await advancer.advance(id)
            #expect(try await Self.answerAll(queue) == ["after done after done hi"])
            try await advancer.advance(id)
            let run = try #require(try await queue.run(id))
            #expect(run.status == .succeeded)
            #expect(run.output == Array(#""done after done after done hi""#.utf8))
            #expect(run.steps.values.allSatisfy { $0.status == .succeeded && $0.jobs.count == 1 })
            // Ended: the hash has a TTL, and nothing is left in the lane.
            #expect(try await queue.redis.send("PTTL", KeyLayout.run(id)).int ?? -1 > 0)
            #expect(try await queue.counts(lane: "lane-a") == LaneCounts(ready: 0, leased: 0, delayed: 0))
        }
    }

    @Test func advancingConcurrentlyAndRepeatedlyCreatesEachStepOnce() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            let id = try await Self.create(queue, Self.fanOut, input: #"{"items": ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]}"#)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 { group.addTask { try await advancer.advance(id) } }
                try await group.waitForAll()
            }
            try await advancer.advance(id)
            #expect(try await queue.counts(lane: "lane-a").ready == 10)
            let run = try #require(try await queue.run(id))
            #expect(run.step("each").jobs.count == 10)
            #expect(Set(run.step("each").jobs).count == 10)
            try await Self.answerAll(queue)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 { group.addTask { try await advancer.advance(id) } }
                try await group.waitForAll()
            }
            let joined = try await Self.answerAll(queue)
            #expect(joined == [(1...10).map { "done \($0)" }.joined(separator: "\n")], "\(joined)")
            try await advancer.advance(id)
            #expect(try await queue.run(id)?.status == .succeeded)
        }
    }

    @Test func aCrashBetweenCreatingAStepsJobsAndRecordingThemCreatesNothingTwice() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            let id = try await Self.create(queue, Self.fanOut, input: #"{"items": ["x", "y", "z"]}"#)
            // Move 1 as the advancer makes it: the step recorded `creating` with its lanes.
            let run = try #require(try await queue.run(id))
            #expect(
                try await queue.recordRun(
                    id, version: run.version, status: .running,
                    fields: [("s:each", Array("creating".utf8)), ("l:each", Array("lane-a".utf8)), ("c:each", Array("3".utf8))]))
            // Move 2, for two of the three items, then the process "dies" before move 3.
            var made: [JobID] = []
            for (item, value) in ["x", "y"].enumerated() {
                var job = spec(payload: #"{"q":"\#(value)"}"#)
                job.tenant = "t1"
                job.idempotencyKey = PipelineRun.idempotencyKey(run: id, step: "each", item: item)
                job.run = PipelineRun.jobTag(run: id, step: "each", item: item)
                made.append(try await queue.enqueue(job).id)
            }
            // Read again after the restart: the same two jobs, one more, recorded once.
            try await advancer.advance(id)
            let after = try #require(try await queue.run(id))
            #expect(after.step("each").status == .running)
            #expect(Array(after.step("each").jobs.prefix(2)) == made.map(\.rawValue))
            #expect(after.step("each").jobs.count == 3)
            #expect(try await queue.counts(lane: "lane-a").ready == 3)
        }
    }

    @Test func aFailedStepFailsTheRunAndCancelsItsSiblingsJobs() async throws {
        try await withQueue { queue, _ in
            let outbox = Outbox()
            let advancer = Self.advancer(queue, outbox: outbox)
            let id = try await Self.create(queue, Self.fanOut, input: #"{"items": [1, 2, 3]}"#, callback: "https://example.com/hook")
            try await advancer.advance(id)
            let jobs = try await queue.lease(lane: "lane-a", count: 1)
            _ = try await queue.fail(jobs[0].id, token: jobs[0].token, attempt: 1, error: "HTTP 400: no", retryable: false)
            try await advancer.advance(id)
            let run = try #require(try await queue.run(id))
            #expect(run.status == .failed)
            #expect(run.error?.contains("HTTP 400") == true)
            #expect(run.step("join").status == .pending)
            // The other items were cancelled, and the run's webhook queued once.
            for other in run.step("each").jobs where other != jobs[0].id.rawValue {
                #expect(try await queue.get(JobID(other)!)?.state == .cancelled)
            }
            try await advancer.advance(id)
            let webhooks = outbox.created.withLock { $0 }
            #expect(webhooks.map(\.type) == ["run.failed"])
            let body = try JSONValue(parsing: webhooks[0].body)
            #expect(body["data"]?["id"] == .string(id))
            #expect(body["data"]?["status"] == "failed")
        }
    }

    @Test func cancellingARunCancelsItsRunningStepAndCreatesNoMore() async throws {
        try await withQueue { queue, _ in
            let outbox = Outbox()
            let advancer = Self.advancer(queue, outbox: outbox)
            let id = try await Self.create(queue, Self.chain, input: #"{"text": "hi"}"#, callback: "https://example.com/hook")
            try await advancer.advance(id)
            #expect(try await queue.cancelRun(id) == .cancelled)
            #expect(try await queue.cancelRun(id) == .alreadyFinished(.cancelled))
            try await advancer.advance(id)
            let run = try #require(try await queue.run(id))
            #expect(run.status == .cancelled)
            #expect(run.step("a").status == .cancelled)
            #expect(try await queue.get(JobID(run.step("a").jobs[0])!)?.state == .cancelled)
            #expect(run.step("b").status == .pending)
            #expect(try await queue.lease(lane: "lane-a", count: 10).isEmpty)
            #expect(outbox.created.withLock { $0.map(\.type) } == ["run.cancelled"])
        }
    }

    @Test func aRunCancelledWhileItsStepWasBeingCreatedCancelsTheJobsAlreadyMade() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            let id = try await Self.creatingFanOut(queue)
            var job = spec(payload: #"{"q":"x"}"#)
            job.idempotencyKey = PipelineRun.idempotencyKey(run: id, step: "each", item: 0)
            let made = try await queue.enqueue(job).id
            #expect(try await queue.cancelRun(id) == .cancelled)
            try await advancer.advance(id)
            #expect(try await queue.get(made)?.state == .cancelled)
            #expect(try await queue.counts(lane: "lane-a").ready == 0)
        }
    }

    @Test func theServiceAdvancesRunsFromTheStreamAndAnIdempotentSubmitReturnsTheFirstRun() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            let service = Task { try await advancer.run() }
            defer { service.cancel() }
            let pipeline = try Pipeline(json: Array(Self.chain.utf8))
            let new = JobQueue.NewRun(
                pipeline: "chain", definition: pipeline.jsonBytes, input: Array(#"{"text":"go"}"#.utf8), idempotencyKey: "k1")
            let first = try await queue.createRun(new, tenant: "t1", submitter: nil)
            let again = try await queue.createRun(new, tenant: "t1", submitter: nil)
            #expect(first.created && !again.created && again.id == first.id)
            for _ in 0..<3 {
                #expect(try await eventually(timeout: .seconds(30)) { try await queue.counts(lane: "lane-a").ready == 1 })
                try await Self.answerAll(queue)
            }
            #expect(try await eventually(timeout: .seconds(30)) { try await queue.run(first.id)?.status == .succeeded })
            #expect(try await queue.run(first.id)?.output == Array(#""done after done after done go""#.utf8))
            let page = try await queue.listRuns(tenant: "t1", limit: 10)
            #expect(page.runs.map(\.id) == [first.id])
        }
    }
}

extension RunTests {
    @Test func entriesAnotherAdvancerLeftUnacknowledgedAreTakenOver() async throws {
        try await withQueue { queue, _ in
            // An advancer of another name read the run's entry and died before acknowledging it.
            let id = try await Self.create(queue, Self.chain, input: #"{"text": "hi"}"#)
            _ = try await queue.redis.send("XGROUP", "CREATE", KeyLayout.runEvents, RunAdvancer.group, "0", "MKSTREAM")
            let read = try await queue.redis.send("XREADGROUP", "GROUP", RunAdvancer.group, "gone", "COUNT", 10, "STREAMS", KeyLayout.runEvents, ">")
            #expect(read.array?.isEmpty == false)
            let advancer = RunAdvancer(
                queue: queue, outbox: nil, directory: { ModelDirectory(providers: [:], routes: [:]) }, logger: Logger(label: "test.runs"),
                sweepIdle: .seconds(1))
            let service = Task { try await advancer.run() }
            defer { service.cancel() }
            // Nothing new reaches the group: only the sweep can move the run on.
            #expect(try await eventually(timeout: .seconds(30)) { try await queue.counts(lane: "lane-a").ready == 1 })
            #expect(try await queue.run(id)?.status == .running)
            let pending = try await queue.redis.send("XPENDING", KeyLayout.runEvents, RunAdvancer.group)
            #expect(try await eventually(timeout: .seconds(10)) {
                try await queue.redis.send("XPENDING", KeyLayout.runEvents, RunAdvancer.group).array?.first?.int == 0
            }, "\(pending)")
        }
    }
}

/// Hostile runs: what a tenant's input or definition can make the advancer do is bounded.
extension RunTests {
    @Test func aMegabyteInputFannedOutAThousandWaysFailsTheStepAndEnqueuesNothing() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            let definition = """
                {"name": "big", "steps": [
                  {"name": "each", "lane": "lane-a", "for_each": "input.items", "request": {"q": "{{ input.big }}", "i": "{{ index }}"}}]}
                """
            let big = String(repeating: "x", count: 1 << 20)
            let items = (0..<1000).map(String.init).joined(separator: ",")
            let id = try await Self.create(queue, definition, input: #"{"big": "\#(big)", "items": [\#(items)]}"#)
            try await advancer.advance(id)
            let run = try #require(try await queue.run(id))
            #expect(run.status == .failed)
            #expect(run.step("each").status == .failed)
            #expect(run.step("each").error?.contains("larger than \(Pipeline.maxStepBytes) bytes") == true, "\(run.step("each").error ?? "")")
            #expect(run.step("each").jobs.isEmpty)
            #expect(try await queue.counts(lane: "lane-a") == LaneCounts(ready: 0, leased: 0, delayed: 0))
        }
    }

    @Test func aDamagedEndCountInTheRunsHashNeitherFailsTheJobsEndNorLeavesTheRunWaiting() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            let id = try await Self.create(queue, Self.chain, input: #"{"text": "hi"}"#)
            try await advancer.advance(id)
            _ = try await queue.redis.send("HSET", KeyLayout.run(id), PipelineRun.Field.ended("a"), "garbage")
            // The job's end is recorded (the script did not fail half-way) ...
            let jobs = try await queue.lease(lane: "lane-a", count: 1)
            _ = try await queue.complete(jobs[0].id, token: jobs[0].token, result: Self.answer("ok"))
            #expect(try await queue.get(jobs[0].id)?.state == .succeeded)
            // ... and the run ends, failed, instead of waiting for a count it cannot reach.
            try await advancer.advance(id)
            let run = try #require(try await queue.run(id))
            #expect(run.status == .failed)
            #expect(run.error?.contains("unreadable") == true, "\(run.error ?? "")")
            #expect(try await queue.counts(lane: "lane-a") == LaneCounts(ready: 0, leased: 0, delayed: 0))
        }
    }

    @Test func aRunWhoseVersionIsDamagedStillMovesOn() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            let id = try await Self.create(queue, Self.chain, input: #"{"text": "hi"}"#)
            _ = try await queue.redis.send("HSET", KeyLayout.run(id), "v", "not a number")
            try await advancer.advance(id)
            #expect(try await queue.run(id)?.status == .running)
            #expect(try await queue.counts(lane: "lane-a").ready == 1)
            _ = try await queue.redis.send("HSET", KeyLayout.run(id), "v", "1.5")
            #expect(try await queue.cancelRun(id) == .cancelled)
        }
    }

    @Test func aRunWhoseKeysRedisRefusesDoesNotHoldUpTheOthers() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            let service = Task { try await advancer.run() }
            defer { service.cancel() }
            // A run whose hash was replaced by a string: every read of it is a WRONGTYPE error.
            let poisoned = try await Self.create(queue, Self.chain, input: #"{"text": "hi"}"#)
            _ = try await queue.redis.send("DEL", KeyLayout.run(poisoned))
            _ = try await queue.redis.send("SET", KeyLayout.run(poisoned), "garbage")
            try await Task.sleep(for: .milliseconds(500))
            let id = try await Self.create(queue, Self.chain, input: #"{"text": "hi"}"#)
            #expect(try await eventually(timeout: .seconds(30)) { try await queue.run(id)?.status == .running })
        }
    }

    @Test func aRunThatCannotBeAdvancedFailsInsteadOfWaitingForGood() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            // A step being created in a lane no job can have (a damaged hash): its enqueue is refused.
            let id = try await Self.creatingFanOut(queue, lane: "no such lane")
            let service = Task { try await advancer.run() }
            defer { service.cancel() }
            #expect(try await eventually(timeout: .seconds(30)) { try await queue.run(id)?.endHandled == true })
            let after = try #require(try await queue.run(id))
            #expect(after.status == .failed)
            #expect(after.error?.contains("could not be advanced") == true, "\(after.error ?? "")")
            #expect(after.step("each").status == .cancelled)
        }
    }

    @Test func jobsEnqueuedByAnAdvancerThatLostARaceWithTheRunsEndAreCancelled() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            let id = try await Self.creatingFanOut(queue)
            // One advancer read the run being created, and is slow to enqueue ...
            let stale = try #require(try await queue.run(id))
            // ... while the run is cancelled and another handles its end (no job exists yet).
            #expect(try await queue.cancelRun(id) == .cancelled)
            try await advancer.advance(id)
            #expect(try await queue.run(id)?.endHandled == true)
            let pipeline = try Pipeline(json: stale.definition)
            let recorded = try await advancer.createJobs([try #require(pipeline.step(named: "each"))], run: stale, pipeline: pipeline, jobs: [:])
            #expect(!recorded)
            // What the slow one enqueued is cancelled by it, not left to run for an ended run.
            #expect(try await queue.counts(lane: "lane-a").ready == 0)
        }
    }

    @Test func aForEachOverNoItemsSucceedsAtOnceAndItsJoinRuns() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            let id = try await Self.create(queue, Self.fanOut, input: #"{"items": []}"#)
            try await advancer.advance(id)
            let run = try #require(try await queue.run(id))
            #expect(run.step("each").status == .succeeded)
            #expect(run.step("each").jobs.isEmpty)
            #expect(try await Self.answerAll(queue) == [""])
            try await advancer.advance(id)
            #expect(try await queue.run(id)?.status == .succeeded)
        }
    }

    @Test func aRunWhoseEntriesWereTrimmedFromTheStreamIsMovedOnByTheIdleSweep() async throws {
        try await withQueue { queue, _ in
            let id = try await Self.create(queue, Self.chain, input: #"{"text": "hi"}"#)
            #expect(try await queue.redis.send("ZSCORE", KeyLayout.activeRuns, id).string != nil)
            try await Self.advancer(queue).advance(id)
            #expect(try await Self.answerAll(queue) == ["hi"])
            // Every entry is gone (the stream's hard cap reached, or a failover): only the counts
            // in the run's hash say that step a has ended.
            _ = try await queue.redis.send("XTRIM", KeyLayout.runEvents, "MAXLEN", 0)
            let advancer = RunAdvancer(
                queue: queue, outbox: nil, directory: { ModelDirectory(providers: [:], routes: [:]) }, logger: Logger(label: "test.runs"),
                idleRunAfter: .seconds(1))
            let service = Task { try await advancer.run() }
            defer { service.cancel() }
            for expected in ["after done hi", "after done after done hi"] {
                #expect(try await eventually(timeout: .seconds(30)) { try await queue.counts(lane: "lane-a").ready == 1 })
                #expect(try await Self.answerAll(queue) == [expected])
                _ = try await queue.redis.send("XTRIM", KeyLayout.runEvents, "MAXLEN", 0)
            }
            #expect(try await eventually(timeout: .seconds(30)) { try await queue.run(id)?.status == .succeeded })
            // Ended: no longer swept.
            #expect(try await queue.redis.send("ZSCORE", KeyLayout.activeRuns, id).string == nil)
        }
    }

    @Test func aStepWhoseIdempotencyKeyAClientJobTookFailsInsteadOfWaitingOnIt() async throws {
        try await withQueue { queue, _ in
            let advancer = Self.advancer(queue)
            let id = try await Self.create(queue, Self.chain, input: #"{"text": "hi"}"#)
            // The tenant's own job, sent with the key the run's first step will use.
            var job = spec(payload: #"{"q":"mine"}"#)
            job.idempotencyKey = PipelineRun.idempotencyKey(run: id, step: "a", item: 0)
            let mine = try await queue.enqueue(job).id
            try await advancer.advance(id)
            let run = try #require(try await queue.run(id))
            #expect(run.status == .failed)
            #expect(run.step("a").error?.contains("idempotency key") == true, "\(run.step("a").error ?? "")")
            // The client's job is its own: not cancelled with the run.
            #expect(try await queue.get(mine)?.state == .queued)
        }
    }

    @Test func aPageOfLargeRunsEndsEarlyAndTheNextPagesHoldTheRest() async throws {
        try await withQueue { queue, _ in
            let input = #"{"text": ""# + String(repeating: "x", count: 500_000) + #""}"#
            var made: [String] = []
            for _ in 0..<12 { made.append(try await Self.create(queue, Self.chain, input: input)) }
            var seen: [String] = []
            var cursor: String? = nil
            var pages = 0
            repeat {
                let page = try await queue.listRuns(tenant: "t1", limit: 100, cursor: cursor)
                // About 4 MiB a page: 9 runs of 500 KB at most, not all 12 (6 MB) at once.
                #expect(page.runs.count <= 9)
                seen += page.runs.map(\.id)
                cursor = page.nextCursor
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 2)
            #expect(Set(seen) == Set(made) && seen.count == made.count)
        }
    }

    @Test func onlyRedisBeingAwayOrNotReadyMakesTheAdvancerReadAnEntryAgain() {
        for passing in ["LOADING Redis is loading", "MISCONF snapshots failing", "OOM command not allowed", "READONLY replica", "NOPERM user"] {
            #expect(RunAdvancer.isPassing(.server(passing)), "\(passing)")
        }
        #expect(RunAdvancer.isPassing(.connectionLost("reset")))
        #expect(RunAdvancer.isPassing(.timeout))
        for own in ["WRONGTYPE Operation against a key", "ERR hash value is not an integer", "ERR Error running script"] {
            #expect(!RunAdvancer.isPassing(.server(own)), "\(own)")
        }
    }
}

extension CancelOutcome {
    func ignore() {}
}
