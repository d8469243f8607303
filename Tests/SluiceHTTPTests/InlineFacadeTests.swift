import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SluiceCore
import SluiceHTTP
import SluiceMock
import SluiceProviders
import SluiceQueue
import SluiceStore
import SluiceTestSupport
import SluiceWebhooks
import SluiceWorker
import Testing

/// The synchronous facade served by the web process itself (`InlineCalls`): real redis-server,
/// the mock provider as a server, real HTTP. No worker pool runs unless a test starts one, so a
/// call answered without one was served inline.
@Suite struct InlineFacadeTests {
    static let lane = FacadeHarness.lane

    /// The API with inline calls for `lane`, through `inlineMock`; the test gets the base URL of
    /// a second, healthy mock (for a worker pool it may start).
    struct Setup {
        let queue: JobQueue
        let client: any TestClientProtocol
        let key: String
        let inlineMock: MockProvider
        let healthy: MockProvider
        let healthyBase: String
        let limits: SluiceConfiguration.Limits

        /// A facade call, on a connection of its own (calls on one connection are answered in
        /// turn, so concurrent calls need their own).
        func chat(_ content: String = "hi", wait: String? = nil) async throws -> (
            status: HTTPResponse.Status, body: [String: Any], job: JobID?
        ) {
            let (status, data, job) = try await FacadeHarness.chat(
                port: client.port!, key: key,
                body: #"{"model": "\#(InlineFacadeTests.lane)", "messages": [{"role": "user", "content": "\#(content)"}], "max_tokens": 8}"#,
                headers: wait.map { ["X-Sluice-Wait": $0] } ?? [:])
            let body = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
            return (HTTPResponse.Status(code: status), body, job.flatMap(JobID.init))
        }

        /// Runs a worker pool (and queue maintenance) calling the healthy mock until `body` returns.
        func withWorkers<T: Sendable>(_ body: () async throws -> T) async throws -> T {
            let pool = WorkerPool(
                queue: queue, lanes: .named([FacadeHarness.mockLane(healthyBase, limits: limits)]), grace: .seconds(1),
                logger: quietLogger)
            let maintenance = QueueMaintenance(queue: queue, logger: quietLogger)
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await pool.run(); return nil }
                group.addTask { try await maintenance.run(); return nil }
                let result = try await body()
                group.cancelAll()
                return result
            }
        }

        /// The `to` states of the lane's events for `id`, in order.
        func events(_ id: JobID) async throws -> [String] {
            try await queue.events(lane: InlineFacadeTests.lane).filter { $0.job == id }.map(\.to.rawValue)
        }
    }

    func withInline(
        _ inlineConfiguration: MockConfiguration = MockConfiguration(), limits: SluiceConfiguration.Limits = .init(),
        inlineLimit: Int = 256, _ body: @escaping @Sendable (Setup) async throws -> Void
    ) async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-inline-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/sluice.sqlite"))
            let key = try keys.create(tenant: "acme", scopes: [.submit, .read]).secret
            // Retries come back quickly (the default backoff is seconds).
            let queue = JobQueue(redis: redis, configuration: QueueConfiguration(retryPolicy: .fixed(.milliseconds(50))))
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            try await withMockProvider(MockConfiguration()) { healthy, healthyBase in
                try await withMockProvider(inlineConfiguration) { inlineMock, inlineBase in
                    var settings = SluiceAPI.Settings()
                    settings.providers = [
                        "mock": SluiceConfiguration.Provider(name: "mock", kind: "openai", baseURL: inlineBase + "/v1", limits: limits)
                    ]
                    try await FacadeHarness.withInlineAPI(
                        queue: queue, waiter: waiter, keys: keys, archive: ArchiveStore(database: keys.database), settings: settings,
                        lane: FacadeHarness.mockLane(inlineBase, limits: limits), inlineLimit: inlineLimit, logger: quietLogger
                    ) { client in
                        try await body(
                            Setup(
                                queue: queue, client: client, key: key, inlineMock: inlineMock, healthy: healthy,
                                healthyBase: healthyBase, limits: limits))
                    }
                }
            }
        }
    }

    @Test func aCallServedInlineLeavesTheRecordOfAWorkerRunJob() async throws {
        try await withInline { setup in
            // No worker runs: the answer can only come from the web process itself.
            let answered = try await setup.chat("inline")
            #expect(answered.status == .ok)
            #expect(answered.body["object"] as? String == "chat.completion")
            let inlineID = try #require(answered.job)
            #expect(setup.inlineMock.stats().received == 1 && setup.healthy.stats().received == 0)
            let inline = try #require(try await setup.queue.get(inlineID))

            // The same call run by a worker, for comparison: queued with the facade's shape.
            let spec = JobSpec(
                lane: Self.lane, tenant: "acme", priority: JobSpec.priorityRange.upperBound, payload: inline.payload,
                envelope: JobEnvelope(format: .openai))
            let workerID = try await setup.queue.enqueue(spec).id
            let worker = try await setup.withWorkers {
                try await JobWaiter(queue: setup.queue).wait(for: workerID, timeout: .seconds(30))
            }
            let ran = try #require(worker)
            #expect(setup.healthy.stats().received == 1)
            for job in [inline, ran] {
                #expect(job.state == .succeeded)
                #expect(job.attempts == 1)
                #expect(job.usageOutput == 8 && (job.usageInput ?? 0) > 0)
                #expect(job.leasedAt != nil && job.finishedAt != nil)
                #expect(job.result.map { String(decoding: $0, as: UTF8.self).contains("chat.completion") } == true)
            }
            #expect(inline.tenant == ran.tenant && inline.priority == ran.priority && inline.metadata == ran.metadata)
            #expect(inline.submitter != nil)  // the key that called, counted in its open jobs until now
            let timelines = try await [inlineID, workerID].asyncMap { id in
                try #require(try await setup.queue.timeline(id)).map(\.state.rawValue)
            }
            #expect(timelines[0] == timelines[1])
            #expect(timelines[0] == ["queued", "leased", "succeeded"])
            #expect(try await setup.events(inlineID) == ["queued", "leased", "succeeded"])
            #expect(try await setup.events(workerID) == ["queued", "leased", "succeeded"])
            // Nothing left in the lane's structures: no lease, nothing ready.
            let counts = try await setup.queue.counts(lane: Self.lane)
            #expect(counts.ready == 0 && counts.leased == 0 && counts.delayed == 0)
        }
    }

    @Test func aServerErrorInlineGoesBackToTheQueueAndAWorkerFinishesIt() async throws {
        var failing = MockConfiguration()
        failing.errorRate = 1
        try await withInline(failing) { setup in
            try await setup.withWorkers {
                let answered = try await setup.chat("retried")
                #expect(answered.status == .ok)
                #expect(answered.body["object"] as? String == "chat.completion")
                let answeredID = try #require(answered.job)
                let job = try #require(try await setup.queue.get(answeredID))
                #expect(job.state == .succeeded && job.attempts == 2)
                #expect(setup.inlineMock.stats().serverErrors == 1)
                #expect(setup.healthy.stats().succeeded == 1)
                let states = try #require(try await setup.queue.timeline(job.id)).map(\.state.rawValue)
                #expect(states == ["queued", "leased", "retry_wait", "queued", "leased", "succeeded"])
            }
        }
    }

    @Test func a429InlineGoesBackToTheQueueWithoutUsingAnAttempt() async throws {
        // One call at a time, over it a bare 429 (nothing announced): the second call, made
        // while the first is in flight, is refused and given back; a worker runs it.
        var busy = MockConfiguration()
        // The second call must come while the first is in flight: 800 ms could run out on a loaded machine.
        busy.latency = .fixed(.seconds(5))
        busy.hiddenConcurrency = 1
        try await withInline(busy) { setup in
            try await setup.withWorkers {
                async let first = setup.chat("first")
                while setup.inlineMock.stats().inFlight < 1 { try await Task.sleep(for: .milliseconds(10)) }
                let second = try await setup.chat("second")
                #expect(try await first.status == .ok)
                #expect(second.status == .ok)
                #expect(setup.inlineMock.stats().hiddenLimited == 1)
                #expect(setup.healthy.stats().succeeded == 1)
                let secondID = try #require(second.job)
                let job = try #require(try await setup.queue.get(secondID))
                #expect(job.state == .succeeded && job.attempts == 1)
                let timeline = try #require(try await setup.queue.timeline(job.id))
                #expect(timeline.map(\.state.rawValue) == ["queued", "leased", "retry_wait", "queued", "leased", "succeeded"])
                #expect(timeline[2].info?.contains("rate limited") == true)
            }
        }
    }

    @Test func callsBeyondTheCapAreQueuedForTheWorkers() async throws {
        var slow = MockConfiguration()
        // The second call must come while the first is in flight: 800 ms could run out on a loaded machine.
        slow.latency = .fixed(.seconds(5))
        try await withInline(slow, inlineLimit: 1) { setup in
            async let first = setup.chat("first")
            while setup.inlineMock.stats().inFlight < 1 { try await Task.sleep(for: .milliseconds(10)) }
            // No worker runs: the call over the cap waits in the queue, and times out there.
            let second = try await setup.chat("second", wait: "0.3")
            #expect(second.status == .gatewayTimeout)
            let secondID = try #require(second.job)
            let queued = try #require(try await setup.queue.get(secondID))
            #expect(queued.state == .queued)
            #expect(try await first.status == .ok)
            #expect(setup.inlineMock.stats().received == 1)
        }
        // A cap of 0 serves nothing inline.
        try await withInline(inlineLimit: 0) { setup in
            let call = try await setup.chat(wait: "0.3")
            #expect(call.status == .gatewayTimeout)
            #expect(setup.inlineMock.stats().received == 0)
        }
    }

    @Test func inlineCallsTakeTheProvidersPermits() async throws {
        // Concurrency 1: the call in flight holds the provider's one slot (seen by every
        // process through Redis); another call meanwhile is queued, not sent.
        var slow = MockConfiguration()
        // The second call must come while the first is in flight: 800 ms could run out on a loaded machine.
        slow.latency = .fixed(.seconds(5))
        let limits = SluiceConfiguration.Limits(concurrency: 1)
        try await withInline(slow, limits: limits) { setup in
            let limiter = ProviderLimiter(redis: setup.queue.redis, provider: "mock", limits: limits)
            async let first = setup.chat("first")
            while setup.inlineMock.stats().inFlight < 1 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(try await limiter.inFlight() == 1)
            let second = try await setup.chat("second", wait: "0.3")
            #expect(second.status == .gatewayTimeout)
            let secondID = try #require(second.job)
            #expect(try await setup.queue.get(secondID)?.state == .queued)
            // Created leased with its permit asked for in the same round trip, refused, and
            // given to the workers (its attempt not counted).
            let timeline = try #require(try await setup.queue.timeline(secondID))
            #expect(timeline.map(\.state.rawValue) == ["queued", "leased", "queued"])
            #expect(timeline.last?.info?.contains("concurrency limit") == true)
            #expect(try await setup.queue.get(secondID)?.attempts == 0)
            #expect(try await first.status == .ok)
            #expect(try await limiter.inFlight() == 0)
            #expect(setup.inlineMock.stats().received == 1)
        }
        // RPM 1: the first call spends the minute's permit; the next is queued, and the one
        // after it goes straight to the queue (the lane is held back after a refusal).
        try await withInline(limits: .init(requestsPerMinute: 1)) { setup in
            #expect(try await setup.chat().status == .ok)
            // (A short wait, and the third call made before any check of the second: it must come
            // within the second of holding back.)
            let second = try await setup.chat(wait: "0.05")
            let third = try await setup.chat(wait: "0.3")
            #expect(second.status == .gatewayTimeout)
            let secondID = try #require(second.job)
            #expect(try await setup.queue.timeline(secondID)?.last?.info?.contains("rpm limit") == true)
            #expect(third.status == .gatewayTimeout)
            let thirdID = try #require(third.job)
            #expect(try await setup.queue.timeline(thirdID)?.map(\.state.rawValue) == ["queued"])
            #expect(setup.inlineMock.stats().received == 1)
        }
    }

    @Test func theFacadeSettingsAreRead() throws {
        let defaults = try SluiceConfiguration.load(yaml: "")
        #expect(defaults.facade.inline == true && defaults.facade.inlineConcurrency == 256)
        let off = try SluiceConfiguration.load(yaml: "facade:\n  inline: false\n  inline_concurrency: 8\n")
        #expect(off.facade.inline == false && off.facade.inlineConcurrency == 8)
        #expect(throws: ConfigurationError.self) { try SluiceConfiguration.load(yaml: "facade:\n  inline_concurrency: -1\n") }
        #expect(throws: ConfigurationError.self) { try SluiceConfiguration.load(yaml: "facade:\n  inlined: true\n") }
    }
}

private let quietLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    return logger
}()
