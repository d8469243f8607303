import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceRedis
import Synchronization

/// The run advancer (`sluice up` and `sluice serve` run one): it moves pipeline runs on as their
/// steps' jobs end, creating each step's jobs once, and announces a run's end.
///
/// It reads the runs stream (`KeyLayout.runEvents`) through the consumer group `runs`
/// (`StreamConsumer`: at-least-once; what a process read and did not acknowledge before it died
/// is read again first). An entry names a run: it was created, cancelled, or one of its steps'
/// jobs ended (written by the very script that ended the job, which also counts the end in the
/// run's hash, so no end is ever missed). For each run named, `advance` reads the run (the
/// counts tell which steps are done: no job is read for that), lets `RunPlan` decide (reading a
/// finished step's results only when a decision needs them), and records the decision
/// compare-and-set on the run's version (run-record.lua).
///
/// **Each step is created once, and none is lost, whatever process dies between any two
/// commands.** A step is created in three moves, each safe to repeat:
/// 1. record it as `creating`, with the lane of each item (decided once, so a route's weighted
///    or measured choice cannot differ on a second try) and the count;
/// 2. enqueue its jobs with the idempotency keys `run:<run>:<step>:<item>` in those lanes (a
///    repeat returns the jobs already created, never new ones);
/// 3. record their ids and the step `running`.
/// A crash after 1 or 2 leaves the step `creating` and the stream entry unacknowledged: it is
/// read again, and 2 and 3 are done again, creating nothing twice. Two advancers of one run (two
/// processes) decide the same (the decisions follow from what they read) and only one records
/// each move (the version). A job that ends before its id is recorded is counted all the same,
/// and the advance that records the step reads the run again right after.
///
/// Limit: the idempotency keys live `queue.idempotency_ttl` (a day by default); a step left
/// `creating` longer than that (the advancer down for a day) could be created twice.
public struct RunAdvancer: Service {
    public let queue: JobQueue
    /// Where the runs' webhooks are queued (nil: no webhooks).
    public let outbox: (any WebhookOutbox)?
    /// Resolves a step's target to its lane, as a submit would.
    public let directory: @Sendable () -> ModelDirectory
    public let logger: Logger
    /// How many stream entries are read at once.
    public let batch: Int

    /// How long an entry may stay read and unacknowledged before another advancer takes it over
    /// (`sweepLoop`).
    public let sweepIdle: Duration

    /// How long a run that has not ended may go without an advancer looking at it before the
    /// idle sweep advances it (`idleSweepLoop`).
    public let idleRunAfter: Duration

    /// The budgets each step's jobs reserve as they are created (nil: none). A step that does
    /// not fit fails (`on_exceeded: fail`, and so its run) or stays `creating` until an advance
    /// finds room (`wait`: the idle sweep looks again every `idleRunAfter`).
    public var budgets: StepBudgets?

    public init(
        queue: JobQueue, outbox: (any WebhookOutbox)?, directory: @escaping @Sendable () -> ModelDirectory, logger: Logger,
        batch: Int = 500, sweepIdle: Duration = .seconds(60), idleRunAfter: Duration = .seconds(300)
    ) {
        self.sweepIdle = sweepIdle
        self.idleRunAfter = idleRunAfter
        self.queue = queue
        self.outbox = outbox
        self.directory = directory
        self.logger = logger
        self.batch = batch
    }

    /// The consumer group of the runs stream.
    public static let group = "runs"

    public func run() async throws {
        let consumer = StreamConsumer(redis: queue.redis, group: Self.group, consumer: "main", batch: batch)
        let trimmed = Mutex(ContinuousClock.now)
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.sweepLoop() }
                group.addTask { await self.idleSweepLoop() }
                await consumer.run(logger: logger, streams: { [KeyLayout.runEvents] }) { _, entries in
                    try await self.advance(runsOf: entries.compactMap { $0.fields["run"] })
                    // The stream is trimmed (never past what the group has not acknowledged) every few seconds.
                    let now = ContinuousClock.now
                    if trimmed.withLock({ last in
                        guard now - last > .seconds(5) else { return false }
                        last = now
                        return true
                    }) {
                        try? await queue.trimRunEvents(keep: 10_000)
                    }
                }
                group.cancelAll()
            }
        }
    }

    /// Advances the runs these entries' `run` fields name ("<run id>[ <step> <item>]"), each once,
    /// concurrently (their reads and scripts pipeline on the client), at most 16 at once.
    func advance(runsOf fields: [String]) async throws {
        var seen: Set<Substring> = []
        var runs: [String] = []
        for field in fields {
            guard let id = field.split(separator: " ").first, seen.insert(id).inserted else { continue }
            runs.append(String(id))
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, id) in runs.enumerated() {
                if index >= 16 { try await group.next() }
                group.addTask { try await self.advanceLogged(id) }
            }
            try await group.waitForAll()
        }
    }

    /// Takes over, every half `sweepIdle`, the entries another advancer read and has not
    /// acknowledged for `sweepIdle` (its process died, and no advancer of that name restarted to
    /// read them again), advances their runs and acknowledges them: with several `sluice serve`,
    /// one that dies for good delays its runs by about a minute, and loses none.
    func sweepLoop() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: sweepIdle / 2)
                var cursor = "0-0"
                repeat {
                    let reply = try await queue.redis.send(
                        "XAUTOCLAIM", KeyLayout.runEvents, Self.group, "main", sweepIdle.milliseconds, cursor, "COUNT", 100)
                    guard let parts = reply.array, parts.count >= 2, let next = parts[0].string else { break }
                    var ids: [String] = []
                    var fields: [String] = []
                    for entry in parts[1].array ?? [] {
                        guard let pair = entry.array, pair.count == 2, let id = pair[0].string else { continue }
                        ids.append(id)
                        let flat = pair[1].array ?? []
                        for index in stride(from: 0, to: flat.count - 1, by: 2) where flat[index].string == "run" {
                            if let run = flat[index + 1].string { fields.append(run) }
                        }
                    }
                    if !ids.isEmpty {
                        logger.info("runs: took over entries left unacknowledged", metadata: ["entries": "\(ids.count)"])
                        try await advance(runsOf: fields)
                        _ = try await queue.redis.send(RedisCommand("XACK", [KeyLayout.runEvents, Self.group] + ids.map { $0 as any RedisArgument }))
                    }
                    cursor = next
                } while cursor != "0-0" && !Task.isCancelled
            } catch is CancellationError {
                return
            } catch {
                // No group yet (nothing was ever read), or Redis away: the next sweep tries again.
                logger.debug("runs: the sweep failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Advances, every fifth of `idleRunAfter`, the runs that have not ended and that no
    /// advancer has looked at for `idleRunAfter` (`KeyLayout.activeRuns`): a run whose last
    /// entry was trimmed from the stream (its hard cap reached while no advancer ran) or lost in
    /// a failover moves on all the same, from the counts in its hash. Each is stamped before it
    /// is advanced, so that several advancers share the sweep rather than repeat it. With the
    /// default, a run waiting on a long step costs one read of its hash every five minutes.
    func idleSweepLoop() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: idleRunAfter / 5)
                let now = UnixMillis.current()
                let before = String(now.value - idleRunAfter.milliseconds)
                while !Task.isCancelled {
                    let reply = try await queue.redis.send("ZRANGEBYSCORE", KeyLayout.activeRuns, "-inf", before, "LIMIT", 0, 100)
                    let ids = (reply.array ?? []).compactMap(\.string)
                    guard !ids.isEmpty else { break }
                    let stamps = ids.flatMap { [String(now.value), $0] as [any RedisArgument] }
                    _ = try await queue.redis.send(RedisCommand("ZADD", [KeyLayout.activeRuns, "XX"] + stamps))
                    logger.info("runs: advancing runs that have not moved for a while", metadata: ["runs": "\(ids.count)"])
                    try await advance(runsOf: ids)
                }
            } catch is CancellationError {
                return
            } catch {
                logger.debug("runs: the idle sweep failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// `advance`, with an error that is the run's own (a damaged run) logged rather than
    /// retried forever; Redis being away or busy is thrown, so that the entries are read again.
    /// An error reply about the run's keys (a hash of the wrong type, a script refusing a
    /// damaged value) is the run's own too: thrown, it would be read again, fail again, and hold
    /// every other run behind it for good.
    func advanceLogged(_ id: String) async throws {
        do {
            try await advance(id)
        } catch let error as RedisError where Self.isPassing(error) {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            logger.error("runs: advancing a run failed", metadata: ["run": "\(id)", "error": "\(error)"])
            // Its entry is acknowledged, and no other may come (a step left `creating` has no
            // job to end): the run fails, rather than waiting for good.
            do {
                guard let run = try await queue.run(id), !run.status.isTerminal else { return }
                var fields = [(PipelineRun.Field.error, Array("the run could not be advanced: \(error)".utf8.prefix(1000)))]
                // Its steps under way are cancelled, their jobs with them (`finishEnded`).
                for (name, step) in run.steps where step.status == .creating || step.status == .running {
                    fields.append((PipelineRun.Field.status(name), Array("cancelled".utf8)))
                }
                if try await queue.recordRun(id, version: run.version, status: .failed, fields: fields) {
                    try await advance(id)
                }
            } catch {
                logger.error("runs: failing a run that could not be advanced failed", metadata: ["run": "\(id)", "error": "\(error)"])
            }
        }
    }

    /// Whether a Redis error says Redis is away or not ready (worth reading the entries again),
    /// rather than refusing what this run's keys hold.
    static func isPassing(_ error: RedisError) -> Bool {
        guard case .server(let message) = error else { return true }
        let passing = [
            "LOADING", "BUSY", "READONLY", "OOM", "MISCONF", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "NOSCRIPT", "NOAUTH",
            "WRONGPASS", "NOPERM",
        ]
        return passing.contains { message.hasPrefix($0) }
    }

    /// Moves one run on as far as it can go now: finishes creating steps, settles steps whose
    /// jobs have all ended, decides and creates the steps now ready, ends the run. Safe to call
    /// any number of times, from any number of processes.
    public func advance(_ id: String) async throws {
        // Each round records one move or returns; a lost compare-and-set reads again.
        for _ in 0..<64 {
            guard let run = try await queue.run(id) else {
                // Gone (or never a run): nothing left to sweep.
                _ = try await queue.redis.send("ZREM", KeyLayout.activeRuns, id)
                return
            }
            if run.status.isTerminal {
                try await finishEnded(run)
                return
            }
            let pipeline: Pipeline
            do { pipeline = try Pipeline(json: run.definition) } catch {
                _ = try await queue.recordRun(
                    id, version: run.version, status: .failed, fields: [(PipelineRun.Field.error, Array("the run's definition cannot be read: \(error)".utf8))])
                continue
            }
            let creating = pipeline.steps.filter { run.step($0.name).status == .creating }
            if !creating.isEmpty {
                // Their requests render from their ancestors' results, as when they were decided.
                var ancestors: Set<String> = []
                var queue = creating.flatMap(\.dependencies)
                while let name = queue.popLast() {
                    guard ancestors.insert(name).inserted else { continue }
                    queue += pipeline.step(named: name)?.dependencies ?? []
                }
                let jobs = try await readJobs(of: Array(ancestors), run)
                var waiting = false
                let recorded = try await createJobs(creating, run: run, pipeline: pipeline, jobs: jobs, waiting: &waiting)
                // A step waiting for its budget: looked at again at the run's next event or idle sweep.
                if waiting && !recorded { return }
                continue
            }
            // Most advances read no job at all: the run's hash counts its steps' ended jobs.
            var jobs = try await readJobs(of: RunPlan.stepsToRead(run: run, pipeline: pipeline), run)
            var plan = RunPlan.next(run: run, pipeline: pipeline, jobs: jobs, now: UnixMillis.current())
            var rounds = 0
            var gone = false
            while !plan.missing.isEmpty {
                rounds += 1
                let before = jobs.count
                jobs.merge(try await readJobs(of: Array(plan.missing), run)) { first, _ in first }
                if jobs.count == before || rounds > pipeline.steps.count {
                    // A result asked for is gone (its job outlived the result TTL): the run cannot go on.
                    let names = plan.missing.sorted().joined(separator: ", ")
                    _ = try await queue.recordRun(
                        id, version: run.version, status: .failed,
                        fields: [(PipelineRun.Field.error, Array("the results of \(names) are gone (their result TTL passed)".utf8))])
                    gone = true
                    break
                }
                plan = RunPlan.next(run: run, pipeline: pipeline, jobs: jobs, now: UnixMillis.current())
            }
            if gone { continue }  // ended: the next round does what follows the end
            guard !plan.isEmpty else { return }
            var fields = plan.fields
            let directory = directory()
            for creation in plan.create {
                guard let step = pipeline.step(named: creation.step) else { continue }
                var lanes: [String] = []
                var problem: String?
                for _ in creation.requests.indices.prefix(creation.requests.isEmpty ? 0 : (Self.sameLane(step) ? 1 : creation.requests.count)) {
                    guard let resolved = directory.lane(for: step.target) else {
                        problem = "step '\(step.name)': no lane serves its target"
                        break
                    }
                    lanes.append(resolved.lane)
                }
                typealias F = PipelineRun.Field
                if let problem {
                    // Nothing serves it (the configuration changed since submit): the step fails, and so the run.
                    fields += [(F.status(step.name), Array("failed".utf8)), (F.error(step.name), Array(problem.utf8))]
                    continue
                }
                fields += [
                    (F.status(step.name), Array("creating".utf8)), (F.lanes(step.name), Array(lanes.joined(separator: ",").utf8)),
                    (F.count(step.name), Array(String(creation.requests.count).utf8)),
                ]
            }
            _ = try await queue.recordRun(id, version: run.version, status: plan.status, fields: fields)
        }
        logger.warning("runs: a run kept changing while it was advanced; its next event moves it on", metadata: ["run": "\(id)"])
    }

    /// Whether every item of a step runs in one lane: a target that names a lane or a provider
    /// does; a route chooses per item (its weights, its measures).
    static func sameLane(_ step: Pipeline.Step) -> Bool {
        if case .model = step.target { return false }
        return true
    }

    /// The jobs of these steps of the run, by id (those still in Redis).
    func readJobs(of steps: [String], _ run: PipelineRun) async throws -> [String: StepJob] {
        let ids = steps.flatMap { run.step($0).jobs }
        let read = try await queue.stepJobs(ids)
        var jobs: [String: StepJob] = [:]
        for (id, job) in zip(ids, read) { if let job { jobs[id] = job } }
        return jobs
    }

    /// Moves 2 and 3 of a step's creation (see the type's doc): enqueues the jobs of the
    /// `creating` steps, idempotently, in the lanes recorded, and records their ids.
    func createJobs(_ steps: [Pipeline.Step], run: PipelineRun, pipeline: Pipeline, jobs: [String: StepJob]) async throws -> Bool {
        var waiting = false
        return try await createJobs(steps, run: run, pipeline: pipeline, jobs: jobs, waiting: &waiting)
    }

    /// `createJobs`, reserving each step's budgets first (`budgets`): a step refused fails, or
    /// is left `creating` and `waiting` set.
    func createJobs(
        _ steps: [Pipeline.Step], run: PipelineRun, pipeline: Pipeline, jobs: [String: StepJob], waiting: inout Bool
    ) async throws -> Bool {
        var specs: [JobSpec] = []
        var reservations: [StepBudgets.Reservation] = []
        var owners: [(step: String, count: Int)] = []
        var fields: [(String, [UInt8])] = []
        typealias F = PipelineRun.Field
        let directory = directory()
        let now = UnixMillis.current()
        for step in steps {
            let record = run.step(step.name)
            let requests: [[UInt8]]
            do { requests = try RunPlan.requests(for: step, run: run, pipeline: pipeline, jobs: jobs) } catch {
                // It rendered when it was decided; a definition that renders differently now fails the step.
                fields += [(F.status(step.name), Array("failed".utf8)), (F.error(step.name), Array("\(error)".utf8))]
                continue
            }
            guard requests.count == record.count else {
                fields += [(F.status(step.name), Array("failed".utf8)), (F.error(step.name), Array("its items changed while it was created".utf8))]
                continue
            }
            var stepSpecs: [JobSpec] = []
            for (item, request) in requests.enumerated() {
                let lane = record.lane(of: item) ?? ""
                var spec = JobSpec(
                    lane: lane, tenant: run.tenant, priority: step.priority ?? 0, payload: request,
                    idempotencyKey: PipelineRun.idempotencyKey(run: run.id, step: step.name, item: item),
                    deadline: step.timeout.map { now + $0 }, maxAttempts: max(1, min(1000, step.retries + 1)))
                var metadata = JSONObjectWriter(capacity: 96)
                metadata.int("item", item)
                metadata.string("run", run.id)
                metadata.string("step", step.name)
                let route: String? = if case .model(let name) = step.target, directory.routes[name] != nil { name } else { nil }
                spec.envelope = JobEnvelope(metadata: RawJSON(unchecked: metadata.finished()), route: route)
                spec.run = PipelineRun.jobTag(run: run.id, step: step.name, item: item)
                stepSpecs.append(spec)
            }
            if let budgets, !stepSpecs.isEmpty {
                switch try await budgets.reserve(&stepSpecs, submitter: run.submitter) {
                case .success(let reservation): reservations.append(reservation)
                case .failure(let refused):
                    if refused.budget.policy.onExceeded == .fail {
                        fields += [(F.status(step.name), Array("failed".utf8)), (F.error(step.name), Array(refused.message.utf8))]
                    } else {
                        waiting = true
                        logger.info(
                            "runs: a step waits for its budget",
                            metadata: ["run": "\(run.id)", "step": "\(step.name)", "budget": "\(refused.budget.name)"])
                    }
                    continue
                }
            }
            specs += stepSpecs
            owners.append((step.name, requests.count))
        }
        // Only steps that wait: nothing to create or record now.
        if specs.isEmpty && fields.isEmpty && waiting { return false }
        // The reservations, in the order of `specs` (a step's jobs are contiguous).
        let reserved = StepBudgets.Reservation(jobs: reservations.flatMap(\.jobs), at: reservations.first?.at ?? now)
        // One job (a plain step) goes through the single submit's group commit, so the steps of
        // many runs created at once share a script call; a fan-out goes as one bulk.
        let created: [EnqueueResult]
        do {
            created =
                specs.isEmpty
                ? [] : specs.count == 1 ? [try await queue.enqueue(specs[0], submitter: run.submitter)] : try await queue.enqueue(specs, submitter: run.submitter)
        } catch {
            if let budgets { await reserved.release(specs.indices, in: budgets.store) }
            throw error
        }
        // A job created before (a repeat after a crash) holds its own reservation.
        if let budgets { await reserved.release(created.indices.filter { !created[$0].created }, in: budgets.store) }
        let foreign = try await foreignJobs(specs: specs, created: created)
        var offset = 0
        let started = Array("\(now.value)".utf8)
        for (step, count) in owners {
            let ids = created[offset..<(offset + count)].map(\.id.rawValue)
            offset += count
            if let id = ids.first(where: foreign.contains) {
                // Not this step's job (its end would never be counted): the step fails.
                let why = "job \(id) was not made for this run: its idempotency key was taken by another job"
                fields += [(F.status(step), Array("failed".utf8)), (F.error(step), Array(why.utf8)), (F.times(step), started + Array(" \(now.value)".utf8))]
                continue
            }
            fields += [
                (F.status(step), Array("running".utf8)), (F.jobs(step), Array(ids.joined(separator: ",").utf8)), (F.times(step), started),
            ]
        }
        if try await queue.recordRun(run.id, version: run.version, fields: fields) { return true }
        // Not recorded. If the run ended meanwhile (a cancel, another advancer failing it), its
        // end may have been handled before these jobs existed, and nothing else would cancel them.
        if let now = try await queue.run(run.id), now.status.isTerminal {
            try await cancel(created.map(\.id))
        }
        return false
    }

    /// The ids, of jobs an enqueue returned without creating them (a repeated idempotency key),
    /// that are not the step's job the spec asked for: a client's own job that took the key
    /// `run:<run>:<step>:<item>` first. Read only for those (a repeat after a crash, rare).
    func foreignJobs(specs: [JobSpec], created: [EnqueueResult]) async throws -> Set<String> {
        let repeated = zip(specs, created).filter { !$0.1.created }
        guard !repeated.isEmpty else { return [] }
        let tags = try await queue.redis.pipeline(repeated.map { RedisCommand("HGET", KeyLayout.job($0.1.id), "run") })
        var foreign: Set<String> = []
        for ((spec, result), tag) in zip(repeated, tags) where tag.string != spec.run { foreign.insert(result.id.rawValue) }
        return foreign
    }

    /// Cancels these jobs, those that have not ended, concurrently.
    func cancel(_ ids: [JobID]) async throws {
        guard !ids.isEmpty else { return }
        let jobs = try await queue.stepJobs(ids.map(\.rawValue))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (id, job) in zip(ids, jobs) where job.map({ !$0.state.isTerminal }) ?? false {
                group.addTask { _ = try await queue.cancel(id) }
            }
            try await group.waitForAll()
        }
    }

    /// What follows a run's end, once: its unfinished steps' jobs are cancelled (a step that was
    /// being created: the jobs its idempotency keys made), and its webhook queued.
    func finishEnded(_ run: PipelineRun) async throws {
        guard !run.endHandled else { return }
        var toCancel: [JobID] = []
        for (name, record) in run.steps {
            // A succeeded step's jobs have all ended; a failed one's may not have (the first
            // failed item fails a for_each step at once), nor a cancelled one's.
            guard record.status == .cancelled || record.status == .failed else { continue }
            toCancel += record.jobs.compactMap(JobID.init)
            if record.status == .cancelled, record.jobs.isEmpty, record.count > 0 {
                let lanes = (0..<record.count).compactMap { record.lane(of: $0) }
                toCancel += try await queue.createdStepJobs(run: run.id, tenant: run.tenant, step: name, lanes: lanes)
                    .compactMap { $0.flatMap(JobID.init) }
            }
        }
        try await cancel(toCancel)
        if let outbox, let url = run.callbackURL {
            let type = "run." + run.status.rawValue
            let resource = try await queue.runResource(run)
            var writer = JSONObjectWriter(capacity: 512 + resource.count)
            writer.raw("data", resource)
            writer.string("timestamp", Self.iso8601(Date()))
            writer.string("type", type)
            try await outbox.create(subject: run.id, url: url, key: run.submitter, type: type, body: writer.finished())
        }
        try await queue.markRunEndHandled(run.id)
        logger.info("runs: ended", metadata: ["run": "\(run.id)", "status": "\(run.status.rawValue)", "cancelled_jobs": "\(toCancel.count)"])
    }

    static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
