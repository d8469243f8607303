import Foundation
import Logging
import SluiceCore
import SluiceProviders
import SluiceQueue
import Synchronization

/// Serves synchronous facade calls in the web process itself (`sluice up`, where the worker pool
/// runs beside the HTTP API): the job is created already leased to this process, in one round
/// trip, and run by the lane's own `LaneWorker` (`call`): the same provider client, limiter,
/// breaker, verdict and reports as a job a worker leased. So its record, timeline, usage, webhook
/// and archive are a worker-run job's.
///
/// What stays as it was:
/// - limits: each call takes a permit from the provider's limiter (RPM, TPM, concurrency, a
///   429's pause and its slow start, cluster-wide), asked for in the same pipelined round trip
///   that creates the job; refused, the job is released to its lane (its attempt not counted)
///   and the workers run it when the limits allow, and the lane's next calls skip the inline
///   path for as long as the limiter said (at most a second);
/// - a 429 or a retryable failure gives the job back to its lane (the verdict's release or
///   fail), where the workers retry it, fall back along its route, or open the breaker, while the
///   facade keeps waiting on the job as before;
/// - a crash: the lease runs out and the reaper hands the job to a worker (at least once);
/// - a lane the pool has not started yet (a new lane), a stopping pool, or a breaker that is
///   not closed: the ordinary path.
///
/// At most `limit` inline calls run at once in this process; beyond, the ordinary path.
public final class InlineCalls: InlineCaller {
    /// The lane worker whose call logic, limiter and breaker serve a lane; nil: not here.
    let worker: @Sendable (_ lane: String) -> LaneWorker?
    let queue: JobQueue
    /// The most inline calls in flight at once (`facade.inline_concurrency`).
    public let limit: Int
    private let running = Atomic<Int>(0)

    /// Inline calls through `pool`'s lane workers (`sluice up`): a lane is served here once the
    /// pool serves it, and no longer once the pool stops.
    public init(pool: WorkerPool, queue: JobQueue, limit: Int) {
        self.worker = { [weak pool] lane in pool?.servingWorker(lane: lane) }
        self.queue = queue
        self.limit = max(0, limit)
        ownWorkers = []
    }

    /// Inline calls for `lanes` through lane workers of their own that never lease (nothing
    /// else is served here: a 429 or a failure leaves the job to some other process's workers).
    /// Their calls' leases are kept alive by `keepLeases()`, which the owner runs beside them.
    public init(
        lanes: [WorkerLane], queue: JobQueue, client: ProviderClient, limit: Int, logger: Logger,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        let stats = ProviderStats(redis: queue.redis)
        var workers: [String: LaneWorker] = [:]
        for lane in lanes {
            workers[lane.lane] = LaneWorker(lane: lane, queue: queue, client: client, stats: stats, logger: logger, environment: environment)
        }
        self.worker = { [workers] lane in workers[lane] }
        self.queue = queue
        self.limit = max(0, limit)
        ownWorkers = Array(workers.values)
    }

    /// The lane workers of the standalone form (none through a pool, whose workers keep their
    /// own leases).
    private let ownWorkers: [LaneWorker]

    /// Extends the leases of the standalone form's calls in flight, every third of the lease,
    /// until cancelled.
    public func keepLeases() async {
        await withDiscardingTaskGroup { group in
            for worker in ownWorkers {
                group.addTask { await worker.leases.run(every: self.queue.configuration.leaseDuration / 3) }
            }
        }
    }

    /// Inline calls in flight now.
    public var inFlight: Int { running.load(ordering: .relaxed) }

    public func start(_ spec: JobSpec, submitter: Int64?) async throws -> InlineStart? {
        guard spec.notBefore == nil, let worker = worker(spec.lane), worker.breakerClosed, !heldBack(spec.lane) else { return nil }
        guard reserve() else { return nil }
        var handedOver = false
        defer { if !handedOver { running.subtract(1, ordering: .relaxed) } }
        let tokens = worker.estimatedTokens
        let limiter = worker.limiter
        let acquireScript = ProviderLimiter.loadedScripts.limitAcquire
        let acquire = acquireScript.evalshaCommand(keys: [limiter.prefix], arguments: limiter.acquireArguments(want: 1, tokens: tokens))
        // One round trip: the permit, and the job created leased.
        let (job, replies) = try await queue.enqueueLeased(spec, submitter: submitter, first: [(acquire, acquireScript)])
        let permit: Result<ProviderLimiter.Grant, ProviderLimiter.Refusal>? = replies.first.flatMap { try? limiter.grant(from: $0) }
        guard let job else {
            // The idempotency key was used: the ordinary submit answers with that job.
            if case .success(let grant)? = permit { try? await limiter.release(slots: grant.slots, unused: grant.count) }
            return nil
        }
        guard case .success(let grant)? = permit else {
            // Held back by the limits: the job goes to the workers, which run it when they allow;
            // and the lane's next calls go there at once for as long as the limiter said.
            var why = "limits held it back: queued for the workers"
            if case .failure(let refusal)? = permit {
                holdBack(spec.lane, for: refusal.wait)
                why = "\(refusal.reason.rawValue) limit: queued for the workers"
            }
            _ = try await queue.release(job.id, token: job.token, why: why)
            return .queued(job.id)
        }
        handedOver = true
        return .run(Call(id: job.id, job: job, worker: worker, grant: grant, tokens: tokens, calls: self))
    }

    /// Until when each lane's calls skip the inline path: its limiter refused a moment ago.
    private let heldBackUntil = Mutex<[String: ContinuousClock.Instant]>([:])

    private func heldBack(_ lane: String) -> Bool {
        heldBackUntil.withLock { held in
            guard let until = held[lane] else { return false }
            if ContinuousClock.now < until { return true }
            held[lane] = nil
            return false
        }
    }

    /// At most a second: the limiter is asked again after that in any case.
    private func holdBack(_ lane: String, for wait: Duration) {
        let until = ContinuousClock.now + min(wait, .seconds(1))
        heldBackUntil.withLock { $0[lane] = until }
    }

    /// Takes one of the `limit` places, if one is free.
    private func reserve() -> Bool {
        if running.add(1, ordering: .relaxed).newValue > limit {
            running.subtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    fileprivate func ended() { running.subtract(1, ordering: .relaxed) }

    /// One inline call: the lane worker's call of the job it did not have to lease.
    struct Call: InlineCall {
        let id: JobID
        let job: LeasedJob
        let worker: LaneWorker
        let grant: ProviderLimiter.Grant
        let tokens: Int
        let calls: InlineCalls

        func run() async -> [UInt8]? {
            defer { calls.ended() }
            // On an event loop, as the lane worker's own calls run (fewer thread hops).
            return await withTaskExecutorPreference(worker.nextExecutor()) {
                await worker.call(job, slot: grant.slots, estimated: tokens, generation: grant.generation)
            }
        }
    }
}

extension WorkerPool {
    /// The lane worker this pool runs for `lane`, when it has started one and is not stopping.
    func servingWorker(lane: String) -> LaneWorker? {
        guard !stopping.isFired else { return nil }
        return workers.withLock { workers in workers.first { $0.lane.lane == lane && !$0.stopping.isFired } }
    }
}

extension LaneWorker {
    /// Whether the lane's circuit breaker is closed (an open or probing lane is left to its
    /// workers).
    var breakerClosed: Bool { control.withLock { $0.breaker == .closed } }
}
