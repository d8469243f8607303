import Foundation
import Logging
import SluiceCore
import SluiceProviders
import SluiceQueue
import SluiceRedis
import Synchronization

/// One lane a worker serves: its jobs go to `provider` at `path`, under the provider's
/// cluster-wide limits, with at most `concurrency` calls in flight from this process.
public struct WorkerLane: Sendable {
    public var lane: String
    public var provider: ProviderSettings
    public var path: String
    public var limits: SluiceConfiguration.Limits
    public var concurrency: Int
    /// The model of a `provider/model` lane: a routed job's request gets it as its `model`.
    public var model: String?
    /// The routes this lane is a target of, by name, with all their target lanes in order: a job
    /// of one of them moves to the next (the fallback) when this lane is out.
    public var routes: [String: [String]]
    /// For the same routes, the API their requests are written in: their first target's kind.
    /// A routed job for a lane of another kind is translated (see `Translation`).
    public var routeFormats: [String: ProviderKind]
    /// Whether each call's latency and outcome go to the lane recorder (`LaneCallRecorder`):
    /// only for a lane that a route choosing by what is measured, or a route with a canary, may
    /// choose; an ordinary lane's calls cost the recorder nothing.
    public var recordsCalls = false
    /// The circuit breaker opens after this many retryable failures in a row…
    public var breakerFailures = 10
    /// …for this long; then one probe call at a time until one succeeds.
    public var breakerOpenFor: Duration = .seconds(30)
    /// The longest a provider's retry-after pauses the lane (the provider's `max_pause`); past
    /// it the breaker opens.
    public var maxPause: Duration = .seconds(600)
    /// How long an idle worker blocks on its lane's marker before it looks again anyway: the
    /// safety net for a wake-up it could not get (Redis was away, another process's worker took
    /// it).
    public var idleWait: Duration = .seconds(2)
    /// The response cache's cap on the bytes of all stored results (`cache.max_bytes`; 0: none).
    public var cacheMaxBytes = 0
    /// How long a job that found an identical call in flight waits before it looks again
    /// (released back to its lane, holding no provider slot while it waits).
    public var cacheRecheck: Duration = .milliseconds(250)
    /// The provider's batch API (`batch_api:`): the lane's batch jobs go through it
    /// (`ProviderBatchSender`, started beside the lane's worker); nil: none.
    public var batchAPI: ProviderBatchSettings?
    /// The tenants' and routes' budgets, checked at lease (LaneWorker+Budgets.swift; a key's
    /// budget comes in its job's envelope), and the clock their periods are read by.
    public var budgets = Budgets()
    public var budgetClock: @Sendable () -> UnixMillis = { .current() }

    public init(
        lane: String, provider: ProviderSettings, path: String, limits: SluiceConfiguration.Limits, concurrency: Int,
        model: String? = nil, routes: [String: [String]] = [:], routeFormats: [String: ProviderKind] = [:]
    ) {
        self.lane = lane
        self.provider = provider
        self.path = path
        self.limits = limits
        self.concurrency = concurrency
        self.model = model
        self.routes = routes
        self.routeFormats = routeFormats
    }

    /// The lane as the configuration describes it; nil when no configured provider serves it.
    public static func configured(_ lane: String, in configuration: SluiceConfiguration, concurrency: Int) -> WorkerLane? {
        guard let (provider, model) = configuration.provider(forLane: lane), let kind = ProviderKind(rawValue: provider.kind) else {
            return nil
        }
        // A lane queued before lanes were checked at submit (`hf/../../api/x`) is never called.
        if let model, ModelDirectory.modelProblem(model) != nil { return nil }
        let settings = ProviderSettings(
            name: provider.name, kind: kind, baseURL: provider.baseURL, apiKeyEnvironment: provider.apiKeyEnvironment,
            timeout: provider.timeout)
        var routes: [String: [String]] = [:]
        var formats: [String: ProviderKind] = [:]
        for (name, route) in configuration.routes where route.targets.contains(where: { $0.lane == lane }) || route.canary?.lane == lane {
            // A canary's lane is no main target's fallback; its own jobs fall back to the main targets.
            routes[name] = route.targets.map(\.lane) + (route.canary?.lane == lane ? [lane] : [])
            let first = configuration.provider(forLane: route.targets[0].lane).flatMap { ProviderKind(rawValue: $0.provider.kind) }
            formats[name] = first ?? kind
        }
        var worker = WorkerLane(
            lane: lane, provider: settings, path: provider.path ?? ProviderAdapter.defaultPath(kind, model: model),
            limits: provider.limits, concurrency: concurrency, model: model, routes: routes.filter { $0.value.count > 1 },
            routeFormats: formats)
        worker.recordsCalls = configuration.routes.values.contains { route in
            (route.strategy.measured || route.canary != nil) && (route.targets.contains { $0.lane == lane } || route.canary?.lane == lane)
        }
        worker.breakerFailures = provider.breakerFailures
        worker.breakerOpenFor = provider.breakerOpenFor
        worker.maxPause = provider.maxPause
        worker.cacheMaxBytes = configuration.cache.maxBytes
        worker.batchAPI = provider.batchAPI
        worker.budgets = configuration.budgets
        return worker
    }
}

/// Runs one lane: takes permits from the provider's limiter, leases that many jobs, calls the
/// provider for each, and reports: complete on success (with usage), release on a 429 (the
/// provider is paused for every worker, and the attempt does not count), fail otherwise
/// (retryable or not, as the classifier says).
///
/// When the lane is out, jobs submitted through a route move to the route's next lane (the
/// fallback): all of them while the breaker is open, and those whose deadline would pass while
/// the provider's limits hold them back.
final class LaneWorker: Sendable {
    let lane: WorkerLane
    let queue: JobQueue
    let client: ProviderClient
    let limiter: ProviderLimiter
    let health: LaneHealth
    let stats: ProviderStats
    let logger: Logger
    let environment: [String: String]
    /// The calls this worker may have in flight: a permit per call, the limit set by `control`.
    let slots: AsyncSemaphore
    /// Fired by `stop()`: no more leases; the calls in flight go on.
    let stopping = AsyncLatch()
    /// This worker's own wake-up, blocked on beside the lane's marker: a stop sets it (setting
    /// the marker could wake another process's worker instead).
    let readyWake: String
    /// The estimated tokens of one call (input + max output), an average of what calls used.
    private let estimate = Mutex(500.0)
    /// Limiter slots granted to a lease attempt that then failed (Redis went away between the two):
    /// given back at the next attempt, so they do not hold the provider's concurrency for the
    /// whole slot lease (after a Sentinel failover they are on the promoted replica too).
    private let slotsToGiveBack = Mutex<[String]>([])
    /// Adaptive concurrency and the circuit breaker.
    let control: Mutex<LaneControl>
    /// The leases of the calls in flight, extended together.
    let leases: LeaseKeeper

    init(
        lane: WorkerLane, queue: JobQueue, client: ProviderClient, stats: ProviderStats, logger: Logger, environment: [String: String]
    ) {
        self.stats = stats
        self.lane = lane
        self.queue = queue
        self.client = client
        var logger = logger
        logger[metadataKey: "lane"] = "\(lane.lane)"
        logger[metadataKey: "provider"] = "\(lane.provider.name)"
        self.logger = logger
        self.environment = environment
        limiter = ProviderLimiter(redis: queue.redis, provider: lane.provider.name, limits: lane.limits)
        health = LaneHealth(redis: queue.redis)
        control = Mutex(LaneControl(ceiling: lane.concurrency, threshold: lane.breakerFailures, openFor: lane.breakerOpenFor))
        slots = AsyncSemaphore(limit: lane.concurrency)
        readyWake = JobQueue.readyWake(lane: lane.lane)
        leases = LeaseKeeper(queue: queue, logger: self.logger)
        cache = ResponseCache(redis: queue.redis, maxBytes: lane.cacheMaxBytes)
        budgetStore = BudgetStore(redis: queue.redis)
    }

    /// The budgets' spend, read at lease (LaneWorker+Budgets.swift).
    let budgetStore: BudgetStore

    /// Stored results and in-flight markers for jobs that carry a cache ticket.
    let cache: ResponseCache

    /// Announced limits are recorded for `/v1/providers` at most once a second…
    private let announcing = Throttle(every: .seconds(1))
    /// …and queued jobs are looked at for missing their deadline at most twice a second.
    private let deadlineLooks = Throttle(every: .milliseconds(500))

    /// Stops leasing: `run` returns once the calls in flight have ended. Cancelling `run`'s task
    /// ends those calls too, and their jobs go back to the lane.
    func stop() {
        stopping.fire()
        slots.close()
    }

    /// Leases and runs jobs until `stop()` or cancellation; then waits for the calls in flight
    /// (child tasks: cancelling this task ends them, and they give their jobs back).
    ///
    /// Nothing polls: a full worker waits on its slots, an idle one blocks on its lane's marker,
    /// and one held back by the provider's limits sleeps exactly as long as they say.
    func run() async {
        await withTaskGroup(of: Void.self) { keeper in
            // The leases of the calls in flight, every third of their duration, until the last
            // call has ended.
            keeper.addTask { await self.leases.run(every: self.queue.configuration.leaseDuration / 3) }
            await runCalls()
            keeper.cancelAll()
        }
    }

    /// The lease loop: the calls are child tasks of it.
    private func runCalls() async {
        await withDiscardingTaskGroup { calls in
            while !stopping.isFired && !Task.isCancelled {
                let now = ContinuousClock.now
                let (allowed, halfOpened, openFor) = control.withLock { control in
                    let halfOpened = control.probing(now: now)
                    return (control.allowed(now: now), halfOpened, control.openFor(now: now))
                }
                if halfOpened { await reportBreaker(.halfOpen, for: nil, reason: "probing") }
                if let openFor {
                    if lane.routes.isEmpty {
                        // Nothing to move: wait for the probe's time (a max_pause can be long).
                        await stopping.sleep(for: min(openFor, .milliseconds(200)))
                    } else {
                        await divertWhileOpen(openFor: openFor)
                    }
                    continue
                }
                slots.limit = allowed
                // Every slot busy: wait until a call ends (0: stopping or cancelled).
                let acquired = await slots.acquire(upTo: 32)
                guard acquired > 0 else { continue }
                // While it waited, a call's end may have opened the breaker or lowered the limit:
                // keep only the slots the lane allows now.
                let held = acquired - excessSlots(of: acquired)
                guard held > 0 else { continue }
                if let jobs = await leaseJobs(upTo: held) {
                    for job in jobs.jobs {
                        calls.addTask(executorPreference: nextExecutor()) {
                            await self.call(job.job, slot: job.slot, estimated: jobs.tokens, generation: jobs.generation)
                            self.slots.release()
                        }
                    }
                }
            }
        }
    }

    /// The event loop the next call runs on: round robin over NIO's loops.
    private let turn = Atomic<UInt>(0)
    func nextExecutor() -> EventLoopTaskExecutor {
        let executors = EventLoopTaskExecutor.shared
        return executors[Int(turn.add(1, ordering: .relaxed).newValue % UInt(executors.count))]
    }

    /// Gives back, of the `acquired` slots just taken, those the lane's control no longer allows
    /// (all when the breaker is open); returns how many.
    private func excessSlots(of acquired: Int) -> Int {
        let now = ContinuousClock.now
        let (allowed, open) = control.withLock { ($0.allowed(now: now), $0.openFor(now: now) != nil) }
        slots.limit = allowed
        let excess = open ? acquired : min(acquired, max(0, slots.held - allowed))
        slots.release(excess)
        return excess
    }

    /// Jobs leased under the limiter's permits, each with its slot (when it holds one).
    private struct Leased {
        var jobs: [(job: LeasedJob, slot: [String])]
        var tokens: Int
        var generation: String
    }

    /// Takes permits from the provider's limiter for up to `held` calls (the worker's slots it
    /// holds) and leases that many jobs. Gives back the slots, and the permits, it does not use;
    /// when there is nothing to run it waits (for the limiter, for work, or after an error).
    private func leaseJobs(upTo held: Int) async -> Leased? {
        var unused = held
        defer { slots.release(unused) }
        var granted: [String] = []
        do {
            try await giveBackSlots()
            let tokens = Bounded.int(estimate.withLock { $0 }.rounded(), in: 0...Bounded.maxTokens) ?? 500
            let grant: ProviderLimiter.Grant
            switch try await limiter.acquire(want: held, tokens: tokens) {
            case .success(let granted): grant = granted
            case .failure(let refusal):
                await divertPastDeadlines(refusal)
                await stopping.sleep(for: min(refusal.wait, .seconds(1)))
                return nil
            }
            granted = grant.slots
            let jobs = try await queue.lease(lane: lane.lane, count: grant.count)
            granted = []
            if jobs.count < grant.count {
                // Best effort: the jobs leased run even if giving the rest back fails (unused slots
                // run out by themselves).
                try? await limiter.release(slots: Array(grant.slots.dropFirst(jobs.count)), unused: grant.count - jobs.count)
            }
            if jobs.isEmpty {
                await waitForWork()
                return nil
            }
            unused -= jobs.count
            let calls = jobs.enumerated().map { index, job in (job, index < grant.slots.count ? [grant.slots[index]] : []) }
            return Leased(jobs: calls, tokens: tokens, generation: grant.generation)
        } catch {
            if !granted.isEmpty { slotsToGiveBack.withLock { $0 += granted } }
            logger.warning("leasing failed; retrying in 1 s", metadata: ["error": "\(error)"])
            await stopping.sleep(for: .seconds(1))
            return nil
        }
    }

    /// Gives back the slots of a failed lease attempt; kept for the next attempt while Redis is
    /// unreachable (any other failure leaves them to expire, as before).
    private func giveBackSlots() async throws {
        let pending = slotsToGiveBack.withLock { slots in
            defer { slots.removeAll() }
            return slots
        }
        guard !pending.isEmpty else { return }
        do {
            try await limiter.release(slots: pending)
        } catch let error as RedisError where error.isConnectionError {
            slotsToGiveBack.withLock { $0 += pending }
            throw error
        } catch {
            logger.warning("giving back limiter slots failed", metadata: ["error": "\(error)", "slots": "\(pending.count)"])
        }
    }

    /// The lane is empty: blocks on its marker until a job is queued (or `idleWait` passes). A
    /// stop, or a cancellation, sets this worker's own wake-up so the blocked read ends at once.
    private func waitForWork() async {
        do {
            _ = try await withWakeUp(stop: stopping, wake: { try? await self.queue.wakeWaiter(self.readyWake) }) {
                try await self.queue.waitForReady(lane: self.lane.lane, wake: self.readyWake, timeout: self.lane.idleWait)
            }
        } catch {
            logger.warning("waiting for work failed; retrying in 1 s", metadata: ["error": "\(error)"])
            await stopping.sleep(for: .seconds(1))
        }
    }

    /// The calls in flight at which a slow start after a pause is over.
    var ceiling: Int { lane.limits.concurrency ?? lane.concurrency }

    /// One job: the call, its lease kept alive while it runs (by `leases`, whose loop `run()`
    /// runs: a caller of `call` outside `run()` runs `leases.run(every:)` itself), then its report. `generation` is the
    /// limiter's pause generation the call started in (its grant's). Returns the answer recorded
    /// when the job succeeded (an inline facade call answers with it), nil otherwise.
    @discardableResult
    func call(_ job: LeasedJob, slot: [String], estimated: Int, generation: String = "") async -> [UInt8]? {
        // Decoded once for the call (its cache ticket, its shape). Jobs without metadata (the
        // common case) skip the envelope entirely. A job with a cache ticket may be answered, or
        // told to wait, without a call.
        let envelope = job.metadata.isEmpty ? nil : JobEnvelope(decoding: job.metadata)
        guard JobTracing.isEnabled else { return await handle(job, envelope: envelope, slot: slot, estimated: estimated, generation: generation) }
        return await traced(job, envelope: envelope) {
            await self.handle(job, envelope: envelope, slot: slot, estimated: estimated, generation: generation)
        }
    }

    /// `call`'s work, once the envelope is read (inside the job's lease span when tracing is on).
    private func handle(_ job: LeasedJob, envelope: JobEnvelope?, slot: [String], estimated: Int, generation: String) async -> [UInt8]? {
        // A budget spent past its limit holds the job back (or fails it) before anything else.
        if await heldByBudget(job, envelope: envelope, slot: slot, estimated: estimated) { return nil }
        let ticket = envelope?.cache
        if let ticket {
            switch await lookUpCache(ticket, job: job, slot: slot, estimated: estimated) {
            case .answered(let answer): return answer
            case .call: break
            }
        }
        let (recorded, stored) = await callProvider(job, envelope: envelope, slot: slot, estimated: estimated, generation: generation, ticket: ticket)
        if let ticket, !stored {
            // The call did not succeed (or its answer could not be stored): the next waiting job leads.
            do { try await cache.abandon(ticket.key, job: job.id) } catch {
                logger.warning("cache abandon failed", metadata: ["job": "\(job.id)", "error": "\(error)"])
            }
        }
        return recorded
    }

    /// A leader's succeeded answer, stored before its job is completed (so whoever sees the job
    /// done finds the answer in the cache). Best effort: a result not stored costs a later
    /// identical job a call, nothing more. Returns whether it was stored.
    private func storeInCache(_ ticket: ResponseCacheTicket, job: LeasedJob, answer: [UInt8], tokens: Int?) async -> Bool {
        do {
            return try await cache.store(ticket.key, job: job.id, result: answer, ttl: ticket.ttl, tokens: tokens ?? 0).stored
        } catch {
            logger.warning("cache store failed", metadata: ["job": "\(job.id)", "error": "\(error)"])
            return false
        }
    }

    /// What the cache said of a job.
    private enum CacheStep {
        /// Done without a call (completed from the cache, or released to wait): its answer if it
        /// completed.
        case answered([UInt8]?)
        /// This job calls the provider (it leads, or the cache could not be asked).
        case call
    }

    /// A hit completes the job with the stored result (timeline `cached`, or `coalesced` when
    /// it had waited for an identical call); an identical call in flight releases the job to
    /// look again after `cacheRecheck`. Either way its provider slot and permit are given back.
    private func lookUpCache(_ ticket: ResponseCacheTicket, job: LeasedJob, slot: [String], estimated: Int) async -> CacheStep {
        let found: ResponseCache.Lookup
        do {
            found = try await cache.lookup(ticket.key, job: job.id, markerTTL: queue.configuration.leaseDuration)
        } catch {
            logger.warning("cache lookup failed; calling", metadata: ["job": "\(job.id)", "error": "\(error)"])
            return .call
        }
        var answer: [UInt8]?
        switch found {
        case .lead: return .call
        case .hit(let result), .coalesced(let result):
            let info = if case .coalesced = found { "coalesced" } else { "cached" }
            let outcome = await report { try await self.queue.complete(job.id, token: job.token, result: result, info: info) }
            if case .recorded(.succeeded) = outcome { answer = result }
        case .wait(let leader):
            await report {
                try await self.queue.release(job.id, token: job.token, delay: self.lane.cacheRecheck, why: "waiting for identical call \(leader)")
            }
        }
        try? await limiter.release(slots: slot, tokenDelta: -estimated, unused: 1)
        return .answered(answer)
    }

    /// The provider call and its report; returns the answer recorded when the job succeeded, and
    /// whether the answer was stored in the cache under `ticket` (before the job was completed).
    private func callProvider(
        _ job: LeasedJob, envelope: JobEnvelope?, slot: [String], estimated: Int, generation: String, ticket: ResponseCacheTicket?
    ) async -> ([UInt8]?, Bool) {
        let request: ProviderRequest
        // A job submitted through a route is written for the route's first target: it gets this
        // lane's model, and is translated when this lane's API differs.
        let shape = Self.shape(envelope, formats: lane.routeFormats)
        let written = shape.written
        do {
            var body = job.payload
            if let written { body = try Translation.request(body, from: written, to: lane.provider.kind, model: lane.model) }
            // An embeddings call through the facade goes to the provider's embeddings endpoint.
            let path = shape.embeddings && lane.provider.kind == .openai ? "/embeddings" : lane.path
            request = try ProviderAdapter.request(
                lane.provider, path: path, body: body, idempotencyKey: job.id.rawValue, environment: environment)
        } catch {
            await report { try await self.queue.fail(job.id, token: job.token, attempt: job.attempt, error: "\(error)", retryable: false) }
            try? await limiter.release(slots: slot)
            return (nil, false)
        }
        let attemptSpan = startAttemptSpan()
        let result = await callKeepingLease(request, job: job)
        let cancelled = Task.isCancelled
        if result.response != nil || !cancelled {
            var rateLimited = false
            if case .rateLimited = result.outcome { rateLimited = true }
            stats.record(provider: lane.provider.name, latency: result.latency, rateLimited: rateLimited)
            if let failure = failure(result.outcome, status: result.response?.status) { stats.recordError(provider: lane.provider.name, failure) }
            if lane.recordsCalls, let outcome = LaneCallRecorder.Outcome.of(result.outcome, latency: result.latency, cancelled: cancelled) {
                stats.lanes.record(lane: lane.lane, outcome)
            }
        }
        let status = result.response.map { "HTTP \($0.status)" } ?? "no answer"
        let info = "\(lane.provider.name) \(status) in \(Bounded.milliseconds(result.latency)) ms"
        let verdict = CallVerdict.decide(result.outcome, cancelled: cancelled, info: info, maxPause: lane.maxPause)
        Self.endAttemptSpan(attemptSpan, result, verdict)
        var used = estimated
        switch verdict.control {
        case .unchanged: break
        case .succeeded:
            if control.withLock({ $0.succeeded(latency: result.latency) }) { await reportBreaker(nil, for: nil, reason: "") }
        case .bareRateLimit: control.withLock { $0.bareRateLimit(now: .now) }
        case .failed:
            if control.withLock({ $0.failed(now: .now) }) { await reportBreaker(.open, for: lane.breakerOpenFor, reason: verdict.breakerReason) }
        }
        if case .rateLimited(let limits, _) = result.outcome, verdict.pause != nil { logAdjusted(limits) }
        if let pause = verdict.pause {
            _ = try? await limiter.pause(for: pause, gentle: true, generation: generation)
            logger.info("provider paused", metadata: ["pause_ms": "\(pause.milliseconds)"])
        }
        if let open = verdict.openBreaker {
            control.withLock { _ = $0.open(now: .now, for: open) }
            await reportBreaker(.open, for: open, reason: verdict.breakerReason)
        }
        var recorded: [UInt8]?
        var reportedTokens: Int?
        var stored = false
        switch verdict.report {
        case .complete:
            if let response = result.response { await noteAnnounced(response) }
            // A window with nothing left: hold off until it resets, before the provider says 429.
            if let response = result.response, Self.saysExhausted(response) {
                let limits = RateLimitInfo(headers: response.headerPairs)
                logAdjusted(limits)
                if let pause = limits.pause { _ = try? await limiter.pause(for: min(pause, lane.maxPause)) }
            }
            var reported: Usage?
            if case .success(let usage) = result.outcome { reported = usage }
            if let reported {
                used = Bounded.add(reported.input, reported.output)  // each within 0...Bounded.maxTokens
                reportedTokens = used
                estimate.withLock { $0 = $0 * 0.9 + Double(used) * 0.1 }
            }
            let usage = reported.map { (input: $0.input, output: $0.output) }
            let body = result.response?.body ?? []
            let answer =
                if let written, written != lane.provider.kind {
                    Translation.response(body, provider: lane.provider.kind, client: written)
                } else { body }
            if let ticket { stored = await storeInCache(ticket, job: job, answer: answer, tokens: reportedTokens) }
            let outcome = await report { try await self.queue.complete(job.id, token: job.token, result: answer, info: info, usage: usage) }
            if case .recorded(.succeeded) = outcome { recorded = answer }
        case .release(let delay, let why):
            await report { try await self.queue.release(job.id, token: job.token, delay: delay, why: why) }
            if cancelled {
                try? await limiter.release(slots: slot)
                return (nil, false)
            }
        case .fail(let error, let retryable):
            await report { try await self.queue.fail(job.id, token: job.token, attempt: job.attempt, error: error, retryable: retryable) }
        }
        try? await limiter.release(
            slots: slot, tokenDelta: Bounded.add(used, -estimated), succeeded: verdict.succeeded, generation: generation, ceiling: ceiling)
        return (recorded, stored)
    }

    /// A failed call as the provider's last errors keep it (`ProviderErrors`); nil for a success.
    private func failure(_ outcome: CallOutcome, status: Int?) -> ProviderErrors.Entry? {
        let kind: String
        let message: String
        switch outcome {
        case .success: return nil
        case .rateLimited(_, let text): (kind, message) = ("rate_limited", text)
        case .retryable(let text): (kind, message) = ("retryable", text)
        case .contextLength(let text): (kind, message) = ("context_length", text)
        case .fatal(let text): (kind, message) = ("fatal", text)
        }
        return ProviderErrors.Entry(
            at: .current(), status: status, kind: kind, message: message, model: lane.model,
            secret: lane.provider.apiKeyEnvironment.flatMap { environment[$0] })
    }

    /// The provider call, with the job's lease kept alive while it runs (by the lane's
    /// `LeaseKeeper`, with every other call's).
    private func callKeepingLease(_ request: ProviderRequest, job: LeasedJob) async -> ProviderClient.Result {
        leases.hold(job.id, token: job.token)
        defer { leases.drop(job.id, token: job.token) }
        return await client.call(request)
    }

    /// Logs the rate-limit headers of an answer that were clamped or ignored (their values are
    /// the provider's figures, never secrets).
    private func logAdjusted(_ limits: RateLimitInfo) {
        for adjustment in limits.adjusted {
            logger.notice(
                "provider header out of range",
                metadata: [
                    "header": "\(adjustment.header)",
                    "value": "\(adjustment.value)", "action": "\(adjustment.action)",
                ])
        }
    }

    // MARK: - When the lane is out

    /// The breaker is open: jobs with a fallback move to it; the others wait until the breaker
    /// lets a probe through (their attempts not counted).
    private func divertWhileOpen(openFor: Duration) async {
        do {
            let jobs = try await queue.lease(lane: lane.lane, count: 64, duration: .seconds(30))
            if jobs.isEmpty {
                await stopping.sleep(for: min(openFor, .milliseconds(200)))
                return
            }
            let (moved, kept) = try await queue.divert(
                lane: lane.lane, .leased(jobs, wait: max(openFor, .milliseconds(100))), routes: lane.routes,
                why: "circuit breaker open")
            if moved > 0 { logger.info("breaker open; jobs moved to their fallback", metadata: ["moved": "\(moved)", "waiting": "\(kept)"]) }
        } catch {
            logger.warning("moving jobs to their fallback failed", metadata: ["error": "\(error)"])
            await stopping.sleep(for: .seconds(1))
        }
    }

    /// The provider's limits hold calls back (a 429's pause, or RPM/TPM spacing): queued jobs
    /// whose deadline would pass first move to their fallback. The wait counts the backlog ahead
    /// at the configured RPM. At most twice a second per worker.
    private func divertPastDeadlines(_ refusal: ProviderLimiter.Refusal) async {
        guard !lane.routes.isEmpty, refusal.reason != .concurrency else { return }
        guard deadlineLooks.due() else { return }
        do {
            var within = refusal.wait
            if let rpm = lane.limits.requestsPerMinute, rpm > 0 {
                let ready = try await queue.counts(lane: lane.lane).ready
                within += .seconds(60) * Double(ready) / Double(rpm)
            }
            let (moved, _) = try await queue.divert(
                lane: lane.lane, .deadlineWithin(within, limit: 1000), routes: lane.routes,
                why: "\(refusal.reason.rawValue) limit: would start only after its deadline")
            if moved > 0 { logger.info("jobs moved to their fallback before their deadlines", metadata: ["moved": "\(moved)"]) }
        } catch {
            logger.warning("moving jobs past their deadline failed", metadata: ["error": "\(error)"])
        }
    }

    /// What a job's envelope says about its call.
    struct CallShape: Sendable, Hashable {
        /// The API its request is written in, when it may need the lane's model or a
        /// translation: the envelope's `format` (the synchronous facade says which), else its
        /// route's. nil for a job submitted to its lane directly: sent as it is.
        var written: ProviderKind?
        /// An embeddings request (`"endpoint": "embeddings"`, from the facade).
        var embeddings = false
    }

    /// The call's shape from the job's envelope (decoded once per call by `call`). Most jobs have
    /// no envelope: a plain call.
    static func shape(_ envelope: JobEnvelope?, formats: [String: ProviderKind]) -> CallShape {
        guard let envelope else { return CallShape() }
        return CallShape(
            written: envelope.format ?? envelope.route.flatMap { formats[$0] }, embeddings: envelope.endpoint == .embeddings)
    }

    private func reportBreaker(_ state: ProviderState.Breaker.State?, for open: Duration?, reason: String) async {
        if let state { logger.warning("circuit breaker", metadata: ["breaker": "\(state.rawValue)", "reason": "\(reason)"]) }
        else { logger.info("circuit breaker", metadata: ["breaker": "closed"]) }
        let until = open.map { UnixMillis(UnixMillis.current().value + $0.milliseconds) }
        try? await health.report(lane: lane.lane, state: state, until: until, reason: reason)
    }

    /// Keeps the rate-limit figures the provider announces, for `/v1/providers` (once a second).
    private func noteAnnounced(_ response: ProviderResponse) async {
        guard announcing.due() else { return }
        let info = RateLimitInfo(headers: response.headerPairs)
        logAdjusted(info)
        guard info.requests != nil || info.tokens != nil else { return }
        let announced = LaneHealth.Announced(
            requestsRemaining: info.requests?.remaining, requestsLimit: info.requests?.limit,
            tokensRemaining: info.tokens?.remaining, tokensLimit: info.tokens?.limit, at: .current())
        try? await health.report(provider: lane.provider.name, announced: announced)
    }

    /// Whether an answer says one of its limit windows is used up (a cheap look at the values
    /// before any parsing: this runs on every success).
    static func saysExhausted(_ response: ProviderResponse) -> Bool {
        response.headers.contains { $0.value == "0" && $0.name.lowercased().contains("remaining") }
    }

    /// Sends a report, retrying while Redis is unreachable (the result must not be lost while the
    /// lease lasts; after that, the job runs again: at least once).
    @discardableResult
    func report(_ send: @Sendable () async throws -> ReportOutcome) async -> ReportOutcome? {
        guard JobTracing.isEnabled else { return await sendReport(send) }
        return await tracedReport { await sendReport(send) }
    }

    private func sendReport(_ send: @Sendable () async throws -> ReportOutcome) async -> ReportOutcome? {
        for attempt in 0..<20 {
            do {
                let outcome = try await send()
                if case .refused(let current) = outcome {
                    logger.info("report refused: another holder has the job", metadata: ["state": "\(current?.rawValue ?? "gone")"])
                }
                return outcome
            } catch {
                logger.warning("report failed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(100 * (attempt + 1)))
            }
        }
        return nil
    }
}

/// Lets something happen at most once per `every` (across the tasks that ask).
final class Throttle: Sendable {
    let every: Duration
    private let last = Mutex<ContinuousClock.Instant?>(nil)

    init(every: Duration) { self.every = every }

    /// Whether it may happen now; if so, the next time is `every` from now.
    func due(now: ContinuousClock.Instant = .now) -> Bool {
        last.withLock { last in
            if let last, now - last < every { return false }
            last = now
            return true
        }
    }
}

// MARK: - For inline calls (InlineCalls.swift)

extension LaneWorker {
    /// The estimated tokens of one call, as the limiter is asked for them before a lease.
    var estimatedTokens: Int { Bounded.int(estimate.withLock { $0 }.rounded(), in: 0...Bounded.maxTokens) ?? 500 }
}
