import Foundation
import Logging
import SluiceCore
import SluiceProviders
import SluiceQueue
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
    /// The circuit breaker opens after this many retryable failures in a row…
    public var breakerFailures = 10
    /// …for this long; then one probe call at a time until one succeeds.
    public var breakerOpenFor: Duration = .seconds(30)
    /// The longest a provider's retry-after pauses the lane (the provider's `max_pause`); past
    /// it the breaker opens.
    public var maxPause: Duration = .seconds(600)

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
        for (name, route) in configuration.routes where route.targets.contains(where: { $0.lane == lane }) {
            routes[name] = route.targets.map(\.lane)
            let first = configuration.provider(forLane: route.targets[0].lane).flatMap { ProviderKind(rawValue: $0.provider.kind) }
            formats[name] = first ?? kind
        }
        var worker = WorkerLane(
            lane: lane, provider: settings, path: provider.path ?? ProviderAdapter.defaultPath(kind, model: model),
            limits: provider.limits, concurrency: concurrency, model: model, routes: routes.filter { $0.value.count > 1 },
            routeFormats: formats)
        worker.breakerFailures = provider.breakerFailures
        worker.breakerOpenFor = provider.breakerOpenFor
        worker.maxPause = provider.maxPause
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
    private let running = Mutex(0)
    /// The estimated tokens of one call (input + max output), an average of what calls used.
    private let estimate = Mutex(500.0)
    /// Adaptive concurrency and the circuit breaker.
    let control: Mutex<LaneControl>

    init(
        lane: WorkerLane, queue: JobQueue, client: ProviderClient, stats: ProviderStats, logger: Logger, environment: [String: String]
    ) {
        self.stats = stats
        self.lane = lane
        self.queue = queue
        self.client = client
        self.logger = logger
        self.environment = environment
        limiter = ProviderLimiter(redis: queue.redis, provider: lane.provider.name, limits: lane.limits)
        health = LaneHealth(redis: queue.redis)
        control = Mutex(LaneControl(ceiling: lane.concurrency, threshold: lane.breakerFailures, openFor: lane.breakerOpenFor))
    }

    /// Announced limits are recorded for `/v1/providers` at most once a second…
    private let announcing = Throttle(every: .seconds(1))
    /// …and queued jobs are looked at for missing their deadline at most twice a second.
    private let deadlineLooks = Throttle(every: .milliseconds(500))

    /// Leases and runs jobs until `stopping()` says so; then waits for the calls in flight. The
    /// caller cancels the task after the grace period: calls still running give their jobs back.
    func run(stopping: @Sendable () -> Bool) async {
        var idle: Duration = .milliseconds(1)
        await withDiscardingTaskGroup { group in
            while !stopping() && !Task.isCancelled {
                let now = ContinuousClock.now
                let (allowed, halfOpened, openFor) = control.withLock { control in
                    let halfOpened = control.probing(now: now)
                    return (control.allowed(now: now), halfOpened, control.openFor(now: now))
                }
                if halfOpened { await reportBreaker("half-open", for: nil, reason: "probing") }
                if let openFor {
                    if lane.routes.isEmpty {
                        // Nothing to move: wait for the probe's time (a max_pause can be long).
                        try? await Task.sleep(for: min(openFor, .milliseconds(200)))
                    } else {
                        await divertWhileOpen(openFor: openFor)
                    }
                    continue
                }
                let free = allowed - running.withLock { $0 }
                if free <= 0 {
                    try? await Task.sleep(for: .milliseconds(1))  // every slot busy: a call ends soon
                    continue
                }
                do {
                    let tokens = Bounded.int(estimate.withLock { $0 }.rounded(), in: 0...Bounded.maxTokens) ?? 500
                    let grant: ProviderLimiter.Grant
                    switch try await limiter.acquire(want: min(free, 32), tokens: tokens) {
                    case .success(let granted): grant = granted
                    case .failure(let refusal):
                        await divertPastDeadlines(refusal)
                        try? await Task.sleep(for: min(refusal.wait, .seconds(1)))
                        continue
                    }
                    let jobs = try await queue.lease(lane: lane.lane, count: grant.count)
                    if jobs.count < grant.count {
                        try await limiter.release(slots: Array(grant.slots.dropFirst(jobs.count)), unused: grant.count - jobs.count)
                    }
                    if jobs.isEmpty {
                        try? await Task.sleep(for: idle)
                        idle = min(idle * 2, .milliseconds(50))
                        continue
                    }
                    idle = .milliseconds(1)
                    running.withLock { $0 += jobs.count }
                    for (index, job) in jobs.enumerated() {
                        let slot = index < grant.slots.count ? [grant.slots[index]] : []
                        group.addTask {
                            await self.call(job, slot: slot, estimated: tokens, generation: grant.generation)
                            self.running.withLock { $0 -= 1 }
                        }
                    }
                } catch {
                    logger.warning("lane \(lane.lane): \(error); retrying in 1 s")
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// The calls in flight at which a slow start after a pause is over.
    var ceiling: Int { lane.limits.concurrency ?? lane.concurrency }

    /// One job: the call, with heartbeats while it runs, then its report. `generation` is the
    /// limiter's pause generation the call started in (its grant's).
    func call(_ job: LeasedJob, slot: [String], estimated: Int, generation: String = "") async {
        let request: ProviderRequest
        // A job submitted through a route is written for the route's first target: it gets this
        // lane's model, and is translated when this lane's API differs.
        let shape = Self.shape(job.metadata, formats: lane.routeFormats)
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
            return
        }
        let heartbeats = Task {
            let every = queue.configuration.leaseDuration / 3
            while !Task.isCancelled {
                try await Task.sleep(for: every)
                _ = try await queue.heartbeat(job.id, token: job.token)
            }
        }
        let result = await client.call(request)
        heartbeats.cancel()
        if result.response != nil || !Task.isCancelled {
            var rateLimited = false
            if case .rateLimited = result.outcome { rateLimited = true }
            stats.record(provider: lane.provider.name, latency: result.latency, rateLimited: rateLimited)
        }
        let milliseconds = Bounded.milliseconds(result.latency)
        let status = result.response.map { "HTTP \($0.status)" } ?? "no answer"
        let info = "\(lane.provider.name) \(status) in \(milliseconds) ms"
        var used = estimated
        var succeeded = false
        if Task.isCancelled {
            // Shutting down past the grace period: the job goes back, its attempt not counted.
            await report { try await self.queue.release(job.id, token: job.token, why: "worker stopped: \(info)") }
            try? await limiter.release(slots: slot)
            return
        }
        switch result.outcome {
        case .success(let usage):
            succeeded = true
            if control.withLock({ $0.succeeded(latency: result.latency) }) {
                await reportBreaker(nil, for: nil, reason: "")
            }
            if let response = result.response { await noteAnnounced(response) }
            // A window with nothing left: hold off until it resets, before the provider says 429.
            if let response = result.response, Self.saysExhausted(response) {
                let limits = RateLimitInfo(headers: response.headerPairs)
                logAdjusted(limits)
                if let pause = limits.pause { _ = try? await limiter.pause(for: min(pause, lane.maxPause)) }
            }
            if let usage {
                used = Bounded.add(usage.input, usage.output)  // each within 0...Bounded.maxTokens
                estimate.withLock { $0 = $0 * 0.9 + Double(used) * 0.1 }
            }
            let body = result.response?.body ?? []
            let answer =
                if let written, written != lane.provider.kind {
                    Translation.response(body, provider: lane.provider.kind, client: written)
                } else { body }
            await report {
                try await self.queue.complete(
                    job.id, token: job.token, result: answer, info: info, usage: usage.map { ($0.input, $0.output) })
            }
        case .rateLimited(let limits, let message) where limits.pause == nil && limits.requests == nil && limits.tokens == nil:
            // A limit nobody announced: slow down here (AIMD) instead of pausing everyone.
            control.withLock { $0.bareRateLimit(now: .now) }
            await report {
                try await self.queue.release(
                    job.id, token: job.token, delay: .milliseconds(100), why: "\(info): rate limited (no limit announced): \(message.prefix(200))")
            }
        case .rateLimited(let limits, let message):
            logAdjusted(limits)
            let asked = limits.pause ?? .seconds(1)
            // A peer cannot stall the lane for ever: the pause is at most max_pause, and a
            // provider asking for longer opens the breaker (routed jobs move to their fallback;
            // then the breaker's probing, and the limiter's, take over).
            let pause = min(asked, lane.maxPause)
            _ = try? await limiter.pause(for: pause, gentle: true, generation: generation)
            logger.info(
                "provider paused", metadata: ["lane": "\(lane.lane)", "provider": "\(lane.provider.name)", "pause_ms": "\(pause.milliseconds)"])
            if asked > lane.maxPause {
                control.withLock { _ = $0.open(now: .now, for: pause) }
                await reportBreaker(
                    "open", for: pause,
                    reason: "\(info): retry-after of \(Bounded.milliseconds(asked)) ms is past max_pause (\(lane.maxPause.milliseconds) ms)")
            }
            await report {
                try await self.queue.release(
                    job.id, token: job.token, why: "\(info): rate limited, provider paused \(pause.milliseconds) ms: \(message.prefix(200))")
            }
        case .retryable(let why):
            if control.withLock({ $0.failed(now: .now) }) {
                await reportBreaker("open", for: lane.breakerOpenFor, reason: "\(info): \(why.prefix(200))")
            }
            await report { try await self.queue.fail(job.id, token: job.token, attempt: job.attempt, error: "\(info): \(why)", retryable: true) }
        case .contextLength(let why), .fatal(let why):
            await report { try await self.queue.fail(job.id, token: job.token, attempt: job.attempt, error: "\(info): \(why)", retryable: false) }
        }
        try? await limiter.release(
            slots: slot, tokenDelta: Bounded.add(used, -estimated), succeeded: succeeded, generation: generation, ceiling: ceiling)
    }

    /// Logs the rate-limit headers of an answer that were clamped or ignored (their values are
    /// the provider's figures, never secrets).
    private func logAdjusted(_ limits: RateLimitInfo) {
        for adjustment in limits.adjusted {
            logger.notice(
                "provider header out of range",
                metadata: [
                    "lane": "\(lane.lane)", "provider": "\(lane.provider.name)", "header": "\(adjustment.header)",
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
                try? await Task.sleep(for: min(openFor, .milliseconds(200)))
                return
            }
            let (moved, kept) = try await queue.divert(
                lane: lane.lane, .leased(jobs, wait: max(openFor, .milliseconds(100))), routes: lane.routes,
                why: "circuit breaker open")
            if moved > 0 { logger.info("lane \(lane.lane): breaker open; \(moved) jobs moved to their fallback, \(kept) wait") }
        } catch {
            logger.warning("lane \(lane.lane): moving jobs to their fallback failed: \(error)")
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// The provider's limits hold calls back (a 429's pause, or RPM/TPM spacing): queued jobs
    /// whose deadline would pass first move to their fallback. The wait counts the backlog ahead
    /// at the configured RPM. At most twice a second per worker.
    private func divertPastDeadlines(_ refusal: ProviderLimiter.Refusal) async {
        guard !lane.routes.isEmpty, refusal.reason != "concurrency" else { return }
        guard deadlineLooks.due() else { return }
        do {
            var within = refusal.wait
            if let rpm = lane.limits.requestsPerMinute, rpm > 0 {
                let ready = try await queue.counts(lane: lane.lane).ready
                within += .seconds(60) * Double(ready) / Double(rpm)
            }
            let (moved, _) = try await queue.divert(
                lane: lane.lane, .deadlineWithin(within, limit: 1000), routes: lane.routes,
                why: "\(refusal.reason) limit: would start only after its deadline")
            if moved > 0 { logger.info("lane \(lane.lane): \(moved) jobs moved to their fallback before their deadlines") }
        } catch {
            logger.warning("lane \(lane.lane): moving jobs past their deadline failed: \(error)")
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

    /// The call's shape from the job's envelope (`JobEnvelope`, its one decoder). Most jobs have
    /// no envelope: nothing is read for them.
    static func shape(_ metadata: [UInt8], formats: [String: ProviderKind]) -> CallShape {
        guard !metadata.isEmpty else { return CallShape() }
        let envelope = JobEnvelope(decoding: metadata)
        return CallShape(
            written: envelope.format ?? envelope.route.flatMap { formats[$0] }, embeddings: envelope.endpoint == .embeddings)
    }

    private func reportBreaker(_ state: String?, for open: Duration?, reason: String) async {
        if let state { logger.warning("lane \(lane.lane): circuit breaker \(state)\(reason.isEmpty ? "" : ": " + reason)") }
        else { logger.info("lane \(lane.lane): circuit breaker closed") }
        let until = open.map { UnixMillis(UnixMillis.current().value + $0.milliseconds) }
        try? await health.report(lane: lane.lane, breaker: state, until: until, reason: reason)
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
    private func report(_ send: @Sendable () async throws -> ReportOutcome) async {
        for attempt in 0..<20 {
            do {
                let outcome = try await send()
                if case .refused(let current) = outcome {
                    logger.info("lane \(lane.lane): a report was refused (the job is \(current?.rawValue ?? "gone")); another holder has it")
                }
                return
            } catch {
                logger.warning("lane \(lane.lane): report failed (\(error)); retrying")
                try? await Task.sleep(for: .milliseconds(100 * (attempt + 1)))
            }
        }
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
