import Foundation
import SluiceCore
import SluiceMock
import SluiceProviders
import SluiceQueue
import SluiceTestSupport
import Testing

@testable import SluiceWorker

/// The route `smart`: OpenAI-shaped requests for `primary/gpt-4o-mini` (an OpenAI-compatible
/// mock), falling back to `backup/claude-3-5-haiku` (an Anthropic mock).
private func routeLanes(primary: String, backup: String, breakerFailures: Int = 3) -> [WorkerLane] {
    let routes = ["smart": ["primary/gpt-4o-mini", "backup/claude-3-5-haiku"]]
    let formats: [String: ProviderKind] = ["smart": .openai]
    var first = WorkerLane(
        lane: "primary/gpt-4o-mini",
        provider: ProviderSettings(name: "primary", kind: .openai, baseURL: primary + "/v1", timeout: .seconds(30)),
        path: "/chat/completions", limits: .init(), concurrency: 8, model: "gpt-4o-mini", routes: routes, routeFormats: formats)
    first.breakerFailures = breakerFailures
    first.breakerOpenFor = .seconds(30)
    let second = WorkerLane(
        lane: "backup/claude-3-5-haiku",
        provider: ProviderSettings(name: "backup", kind: .anthropic, baseURL: backup, timeout: .seconds(30)),
        path: "/v1/messages", limits: .init(), concurrency: 8, model: "claude-3-5-haiku", routes: routes, routeFormats: formats)
    return [first, second]
}

/// A job submitted through the route (as the HTTP API records it: `route` in its envelope, and
/// in its own hash field for the fallback script).
private func routedJob(_ n: Int, deadline: UnixMillis? = nil) -> JobSpec {
    var spec = JobSpec(
        lane: "primary/gpt-4o-mini", tenant: "t",
        payload: Array(#"{"model": "smart", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "n\#(n)"}]}"#.utf8),
        maxAttempts: 20, envelope: JobEnvelope(route: "smart"))
    spec.deadline = deadline
    return spec
}

@Suite struct FallbackTests {
    /// A lane built from the configuration knows the routes it is in, their order, the API
    /// their requests are written for, and its provider's breaker settings.
    @Test func aConfiguredLaneKnowsItsRoutes() throws {
        let configuration = try SluiceConfiguration.load(yaml: """
            providers:
              openai: { kind: openai, base_url: "http://127.0.0.1:1/v1", breaker: { failures: 4, open_for: 5s } }
              anthropic: { kind: anthropic, base_url: "http://127.0.0.1:2" }
            routes:
              gpt-4o-mini: [openai/gpt-4o-mini, anthropic/claude-3-5-haiku]
              solo: [openai/gpt-4o-mini]
            """)
        let primary = try #require(WorkerLane.configured("openai/gpt-4o-mini", in: configuration, concurrency: 8))
        #expect(primary.routes == ["gpt-4o-mini": ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"]], "a one-target route has no fallback")
        #expect(primary.routeFormats == ["gpt-4o-mini": .openai, "solo": .openai])
        #expect(primary.model == "gpt-4o-mini" && primary.breakerFailures == 4 && primary.breakerOpenFor == .seconds(5))
        let backup = try #require(WorkerLane.configured("anthropic/claude-3-5-haiku", in: configuration, concurrency: 8))
        #expect(backup.routeFormats == ["gpt-4o-mini": .openai], "written for the route's first target")
        #expect(backup.path == "/v1/messages")
    }

    /// The primary answers only 500s: its breaker opens, and the routed jobs move to the backup,
    /// an Anthropic provider: translated there and back, recorded with the lane they ran on and
    /// the move in their timeline. A job with no route stays with its lane.
    @Test func anOpenBreakerMovesRoutedJobsToTheFallback() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis, configuration: QueueConfiguration(retryPolicy: .fixed(.milliseconds(10))))
            var failing = MockConfiguration()
            failing.errorRate = 1
            try await withMockProvider(failing) { down, primary in
                try await withMockProvider(MockConfiguration()) { up, backup in
                    let routed = try await queue.enqueue((0..<40).map { routedJob($0) }).map(\.id)
                    var plain = chatJob("primary/gpt-4o-mini", 99)
                    plain.maxAttempts = 20
                    let unrouted = try await queue.enqueue(plain).id
                    let lanes = routeLanes(primary: primary, backup: backup)
                    let jobs = try await withWorkers(queue, lanes) {
                        let jobs = try await finished(queue, routed, timeout: .seconds(30))
                        let breaker = try await ProviderStateReader(redis: redis).breaker(lane: "primary/gpt-4o-mini")
                        #expect(breaker?.state == .open)
                        #expect(breaker?.reason.contains("HTTP 500") == true)
                        return jobs
                    }
                    #expect(jobs.count == 40 && jobs.allSatisfy { $0.state == .succeeded }, "\(jobs.map(\.state))")
                    for job in jobs {
                        #expect(job.lane == "backup/claude-3-5-haiku")
                        let log = try #require(try await queue.timeline(job.id)).compactMap(\.info).joined(separator: "\n")
                        #expect(log.contains("moved from primary/gpt-4o-mini to backup/claude-3-5-haiku (route smart)"), "\(log)")
                        // The Anthropic answer, translated back to the OpenAI shape the job was written in.
                        let answer = try #require(try JSONSerialization.jsonObject(with: Data(job.result ?? [])) as? [String: Any])
                        #expect(answer["object"] as? String == "chat.completion")
                        #expect((answer["id"] as? String)?.hasPrefix("msg_mock") == true)
                        let usage = answer["usage"] as? [String: Any]
                        #expect((usage?["completion_tokens"] as? Int ?? 0) > 0)
                        #expect(job.usageOutput == usage?["completion_tokens"] as? Int)
                    }
                    // The primary saw a few failures before its breaker opened (3 in a row per
                    // worker, plus the calls already in flight), not one per job.
                    #expect(down.stats().received < 40)
                    #expect(up.stats().succeeded >= 40)
                    let left = try #require(try await queue.get(unrouted))
                    #expect(left.lane == "primary/gpt-4o-mini" && !left.state.isTerminal, "no route: it waits for its lane")
                }
            }
        }
    }

    /// The primary's provider is paused for two minutes (a 429's retry-after): queued routed jobs
    /// whose deadline falls within that move to the fallback and finish in time; routed jobs
    /// with no deadline, and ones whose deadline is far enough, wait.
    @Test func jobsThatWouldMissTheirDeadlineMoveToTheFallback() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            try await withMockProvider(MockConfiguration()) { down, primary in
                try await withMockProvider(MockConfiguration()) { up, backup in
                    // Room for a loaded machine: the urgent jobs have 60 s (within the pause), the late
                    // ones 600 s (past it).
                    try await ProviderLimiter(redis: redis, provider: "primary", limits: .init()).pause(for: .seconds(120))
                    let soon = UnixMillis(UnixMillis.current().value + 60_000)
                    let late = UnixMillis(UnixMillis.current().value + 600_000)
                    let urgent = try await queue.enqueue((0..<10).map { routedJob($0, deadline: soon) }).map(\.id)
                    let patient = try await queue.enqueue((10..<15).map { routedJob($0, deadline: late) } + (15..<20).map { routedJob($0) }).map(\.id)
                    let lanes = routeLanes(primary: primary, backup: backup)
                    let jobs = try await withWorkers(queue, lanes) { try await finished(queue, urgent, timeout: .seconds(55)) }
                    #expect(jobs.allSatisfy { $0.state == .succeeded && $0.lane == "backup/claude-3-5-haiku" }, "\(jobs.map { ($0.state, $0.lane) })")
                    for id in patient {
                        let job = try #require(try await queue.get(id))
                        #expect(job.state == .queued && job.lane == "primary/gpt-4o-mini")
                    }
                    #expect(down.stats().received == 0)
                    #expect(up.stats().succeeded == 10)
                }
            }
        }
    }

    /// The fallback script reads the route from its own hash field; a job enqueued by an earlier
    /// version (the route only in its envelope JSON) still moves.
    @Test func theRouteIsAFieldOfItsOwnAndEarlierJobsStillMove() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let current = try await queue.enqueue(routedJob(1)).id
            #expect(try await redis.send("HGET", KeyLayout.job(current), "route").string == "smart")
            var earlier = routedJob(2)
            earlier.metadata = Array(#"{"metadata":{"route":"not this one"},"route":"smart"}"#.utf8)
            earlier.route = nil
            let old = try await queue.enqueue(earlier).id
            #expect(try await redis.send("HGET", KeyLayout.job(old), "route").string == nil)
            var plain = routedJob(3)
            plain.envelope = JobEnvelope()
            let unrouted = try await queue.enqueue(plain).id
            let (moved, kept) = try await queue.divert(
                lane: "primary/gpt-4o-mini", .deadlineWithin(.seconds(86_400), limit: 10),
                routes: ["smart": ["primary/gpt-4o-mini", "backup/claude-3-5-haiku"]], why: "test")
            #expect(moved == 0 && kept == 0, "no deadlines: nothing is due to move")
            let leased = try await queue.lease(lane: "primary/gpt-4o-mini", count: 10)
            #expect(Set(leased.map(\.id)) == [current, old, unrouted])
            let outcome = try await queue.divert(
                lane: "primary/gpt-4o-mini", .leased(leased, wait: .seconds(1)),
                routes: ["smart": ["primary/gpt-4o-mini", "backup/claude-3-5-haiku"]], why: "test")
            #expect(outcome.moved == 2 && outcome.kept == 1)
            #expect(try await queue.get(current)?.lane == "backup/claude-3-5-haiku")
            #expect(try await queue.get(old)?.lane == "backup/claude-3-5-haiku")
            #expect(try await queue.get(unrouted)?.lane == "primary/gpt-4o-mini")
        }
    }

    /// A moved job keeps its id, and everything addressed by id follows it: get, cancel, list.
    @Test func aMovedJobIsStillFoundAndCancelledByItsId() async throws {
        try await withRedis { _, redis in
            let queue = JobQueue(redis: redis)
            let id = try await queue.enqueue(routedJob(1, deadline: UnixMillis(UnixMillis.current().value + 5_000))).id
            let (moved, kept) = try await queue.divert(
                lane: "primary/gpt-4o-mini", .deadlineWithin(.seconds(60), limit: 10),
                routes: ["smart": ["primary/gpt-4o-mini", "backup/claude-3-5-haiku"]], why: "test")
            #expect(moved == 1 && kept == 0)
            #expect(try await queue.get(id)?.lane == "backup/claude-3-5-haiku")
            #expect(try await queue.counts(lane: "primary/gpt-4o-mini").ready == 0)
            #expect(try await queue.counts(lane: "backup/claude-3-5-haiku").ready == 1)
            #expect(try await queue.lease(lane: "primary/gpt-4o-mini", count: 10).isEmpty, "the old lane's entry is a tombstone")
            // Listed once, under the lane it was submitted to (the index stays there).
            let page = try await queue.list(tenant: "t", limit: 10)
            #expect(page.jobs.map(\.id) == [id])
            // It can move on only to a lane it has not left: back to the primary it cannot.
            let again = try await queue.divert(
                lane: "backup/claude-3-5-haiku", .deadlineWithin(.seconds(60), limit: 10),
                routes: ["smart": ["primary/gpt-4o-mini", "backup/claude-3-5-haiku"]], why: "test")
            #expect(again.moved == 0 && again.kept == 1)
            #expect(try await queue.cancel(id) == .cancelled)
            #expect(try await queue.get(id)?.state == .cancelled)
            #expect(try await queue.counts(lane: "backup/claude-3-5-haiku").ready == 0)
            // Leased there, it completes through the fallback lane's structures.
            let second = try await queue.enqueue(routedJob(2, deadline: UnixMillis(UnixMillis.current().value + 5_000))).id
            _ = try await queue.divert(
                lane: "primary/gpt-4o-mini", .deadlineWithin(.seconds(60), limit: 10),
                routes: ["smart": ["primary/gpt-4o-mini", "backup/claude-3-5-haiku"]], why: "test")
            let leased = try await queue.lease(lane: "backup/claude-3-5-haiku", count: 10)
            #expect(leased.map(\.id) == [second])
            #expect(try await queue.heartbeat(second, token: leased[0].token) != .lost(current: nil))
            #expect(try await queue.complete(second, token: leased[0].token, result: Array("{}".utf8)) == .recorded(.succeeded))
            #expect(try await queue.counts(lane: "backup/claude-3-5-haiku").leased == 0)
        }
    }
}
