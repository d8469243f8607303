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

    public init(lane: String, provider: ProviderSettings, path: String, limits: SluiceConfiguration.Limits, concurrency: Int) {
        self.lane = lane
        self.provider = provider
        self.path = path
        self.limits = limits
        self.concurrency = concurrency
    }

    /// The lane as the configuration describes it; nil when no configured provider serves it.
    public static func configured(_ lane: String, in configuration: SluiceConfiguration, concurrency: Int) -> WorkerLane? {
        guard let (provider, model) = configuration.provider(forLane: lane), let kind = ProviderKind(rawValue: provider.kind) else {
            return nil
        }
        let settings = ProviderSettings(
            name: provider.name, kind: kind, baseURL: provider.baseURL, apiKeyEnvironment: provider.apiKeyEnvironment,
            timeout: provider.timeout)
        return WorkerLane(
            lane: lane, provider: settings, path: provider.path ?? ProviderAdapter.defaultPath(kind, model: model),
            limits: provider.limits, concurrency: concurrency)
    }
}

/// Runs one lane: takes permits from the provider's limiter, leases that many jobs, calls the
/// provider for each, and reports: complete on success (with usage), release on a 429 (the
/// provider is paused for every worker, and the attempt does not count), fail otherwise
/// (retryable or not, as the classifier says).
final class LaneWorker: Sendable {
    let lane: WorkerLane
    let queue: JobQueue
    let client: ProviderClient
    let limiter: ProviderLimiter
    let logger: Logger
    let environment: [String: String]
    private let running = Mutex(0)
    /// The estimated tokens of one call (input + max output), an average of what calls used.
    private let estimate = Mutex(500.0)
    /// Adaptive concurrency and the circuit breaker.
    let control: Mutex<LaneControl>

    init(lane: WorkerLane, queue: JobQueue, client: ProviderClient, logger: Logger, environment: [String: String]) {
        self.lane = lane
        self.queue = queue
        self.client = client
        self.logger = logger
        self.environment = environment
        limiter = ProviderLimiter(redis: queue.redis, provider: lane.provider.name, limits: lane.limits)
        control = Mutex(LaneControl(ceiling: lane.concurrency))
    }

    /// Leases and runs jobs until `stopping()` says so; then waits for the calls in flight. The
    /// caller cancels the task after the grace period: calls still running give their jobs back.
    func run(stopping: @Sendable () -> Bool) async {
        var idle: Duration = .milliseconds(1)
        await withDiscardingTaskGroup { group in
            while !stopping() && !Task.isCancelled {
                let now = ContinuousClock.now
                let allowed = control.withLock { control in
                    control.probing(now: now)
                    return control.allowed(now: now)
                }
                let free = allowed - running.withLock { $0 }
                if free <= 0 {
                    try? await Task.sleep(for: .milliseconds(1))  // every slot busy: a call ends soon
                    continue
                }
                do {
                    let tokens = Int(estimate.withLock { $0 })
                    let grant: ProviderLimiter.Grant
                    switch try await limiter.acquire(want: min(free, 32), tokens: tokens) {
                    case .success(let granted): grant = granted
                    case .failure(let refusal):
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
                            await self.call(job, slot: slot, estimated: tokens)
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

    /// One job: the call, with heartbeats while it runs, then its report.
    func call(_ job: LeasedJob, slot: [String], estimated: Int) async {
        let request: ProviderRequest
        do {
            request = try ProviderAdapter.request(
                lane.provider, path: lane.path, body: job.payload, idempotencyKey: job.id.rawValue, environment: environment)
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
        let milliseconds = Int(result.latency / .milliseconds(1))
        let status = result.response.map { "HTTP \($0.status)" } ?? "no answer"
        let info = "\(lane.provider.name) \(status) in \(milliseconds) ms"
        var used = estimated
        if Task.isCancelled {
            // Shutting down past the grace period: the job goes back, its attempt not counted.
            await report { try await self.queue.release(job.id, token: job.token, why: "worker stopped: \(info)") }
            try? await limiter.release(slots: slot)
            return
        }
        switch result.outcome {
        case .success(let usage):
            control.withLock { $0.succeeded(latency: result.latency) }
            // A window with nothing left: hold off until it resets, before the provider says 429.
            if let response = result.response, Self.saysExhausted(response), let pause = RateLimitInfo(headers: response.headerPairs).pause {
                _ = try? await limiter.pause(for: pause)
            }
            if let usage {
                used = usage.input + usage.output
                estimate.withLock { $0 = $0 * 0.9 + Double(used) * 0.1 }
            }
            await report {
                try await self.queue.complete(
                    job.id, token: job.token, result: result.response?.body ?? [], info: info,
                    usage: usage.map { ($0.input, $0.output) })
            }
        case .rateLimited(let limits, let message) where limits.pause == nil && limits.requests == nil && limits.tokens == nil:
            // A limit nobody announced: slow down here (AIMD) instead of pausing everyone.
            control.withLock { $0.bareRateLimit(now: .now) }
            await report {
                try await self.queue.release(
                    job.id, token: job.token, delay: .milliseconds(100), why: "\(info): rate limited (no limit announced): \(message.prefix(200))")
            }
        case .rateLimited(let limits, let message):
            let pause = limits.pause ?? .seconds(1)
            _ = try? await limiter.pause(for: pause)
            logger.info("lane \(lane.lane): 429 from \(lane.provider.name); paused \(pause) for every worker")
            await report {
                try await self.queue.release(
                    job.id, token: job.token, why: "\(info): rate limited, provider paused \(Int(pause / .milliseconds(1))) ms: \(message.prefix(200))")
            }
        case .retryable(let why):
            control.withLock { $0.failed(now: .now) }
            await report { try await self.queue.fail(job.id, token: job.token, attempt: job.attempt, error: "\(info): \(why)", retryable: true) }
        case .contextLength(let why), .fatal(let why):
            await report { try await self.queue.fail(job.id, token: job.token, attempt: job.attempt, error: "\(info): \(why)", retryable: false) }
        }
        try? await limiter.release(slots: slot, tokenDelta: used - estimated)
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
