import Foundation
import SluiceCore
import SluiceRedis

/// The job lifecycle on Redis.
///
/// Guarantees, each kept by running the transition as one Lua script:
/// - at-least-once: a leased job whose worker vanishes is put back by the reaper when its lease
///   runs out (the attempt counts);
/// - a result is recorded only by the current lease holder (compare-and-set on the lease token);
///   a stale worker's late complete or fail is refused and reported as `.refused`;
/// - a job is never in two live structures at once, and reaches exactly one terminal state.
public final class JobQueue: Sendable {
    public let redis: RedisClient
    public let configuration: QueueConfiguration
    let scripts = QueueScripts.shared
    private let completions: GroupCommit<CompleteReport, ReportOutcome>
    private let submits: GroupCommit<(JobSpec, submitter: Int64?), EnqueueResult>

    /// A queue over `redis`. Several queues (in several processes) may share one Redis: all their
    /// state is there.
    public init(redis: RedisClient, configuration: QueueConfiguration = .default) {
        self.redis = redis
        self.configuration = configuration
        let scripts = QueueScripts.shared
        completions = GroupCommit(maxBatch: configuration.completeBatch) { _, reports in
            try await JobQueue.sendCompletes(
                redis: redis, script: scripts.complete, configuration: configuration, tag: reports[0].id.laneTag,
                reports: reports)
        }
        submits = GroupCommit(maxBatch: configuration.enqueueChunk) { _, items in
            // One group holds one lane and one submitter (see `enqueue(_:submitter:)`).
            try await JobQueue.enqueue(
                items.map(\.0), submitter: items[0].submitter, redis: redis, scripts: scripts, configuration: configuration)
        }
    }

    /// The hard cap the scripts append with; maintenance trims to `eventStreamCap` (trim-events.lua).
    private var cap: Int { configuration.eventStreamMax }
    private var resultTTL: Int64 { configuration.resultTTL.milliseconds }

    // MARK: - Enqueue

    /// Enqueues one job. With an idempotency key already used by the tenant in that lane, the
    /// existing job's id comes back with `created == false`.
    ///
    /// Concurrent single submits to one lane (by one key) are sent together, in one script call
    /// (group commit); each is still checked on its own first, so a bad one fails alone.
    public func enqueue(_ spec: JobSpec, submitter: Int64? = nil) async throws -> EnqueueResult {
        do { try spec.validate() } catch { throw QueueError.invalidSpec(index: 0, error) }
        return try await submits.submit((spec, submitter), group: spec.lane + "\u{0}" + (submitter.map(String.init) ?? ""))
    }

    /// Enqueues many jobs, any mix of lanes. Every spec is checked first, so an invalid one
    /// enqueues nothing. Each lane's jobs go, per tenant, in chunks of `enqueueChunk` per script call, all
    /// chunks pipelined; every chunk is atomic, a whole bulk is not (a crash midway leaves the
    /// chunks already run, and resubmitting with idempotency keys completes it safely).
    /// `submitter`, the id of the API key that submitted, is recorded on each job created, and
    /// counted in that key's open jobs until the job finishes (`openJobs(key:)`).
    public func enqueue(_ specs: [JobSpec], submitter: Int64? = nil) async throws -> [EnqueueResult] {
        try await Self.enqueue(specs, submitter: submitter, redis: redis, scripts: scripts, configuration: configuration)
    }

    /// Checks every spec, plans the calls (`EnqueuePlan`), and sends them pipelined.
    static func enqueue(
        _ specs: [JobSpec], submitter: Int64?, redis: RedisClient, scripts: QueueScripts, configuration: QueueConfiguration
    ) async throws -> [EnqueueResult] {
        for (index, spec) in specs.enumerated() {
            do { try spec.validate() } catch { throw QueueError.invalidSpec(index: index, error) }
        }
        guard !specs.isEmpty else { return [] }
        var random = SplitMix64()
        let plan = EnqueuePlan(specs, submitter: submitter, now: UnixMillis.current(), random: &random, configuration: configuration)
        var commands = [RedisCommand("SADD", [KeyLayout.lanes] + plan.lanes.map { $0 as any RedisArgument })]
        for call in plan.calls {
            commands.append(scripts.enqueue.evalshaCommand(keys: [KeyLayout.prefix(call.tag)], arguments: call.arguments))
        }
        var replies = try await redis.pipeline(commands)
        // A call that answered NOSCRIPT did not run; only those are sent again. (Others in the
        // same pipeline may have run, once a concurrent caller loaded the script.)
        let missing = replies.indices.filter { replies[$0].errorMessage?.hasPrefix("NOSCRIPT") == true }
        if !missing.isEmpty {
            try await redis.send(RedisCommand("SCRIPT", "LOAD", scripts.enqueue.source))
            let retried = try await redis.pipeline(missing.map { commands[$0] })
            for (index, reply) in zip(missing, retried) { replies[index] = reply }
        }
        if let message = replies[0].errorMessage { throw RedisError.server(message) }
        if let added = replies[0].int, added > 0 {
            // A lane used for the first time: worker pools that discover lanes start it now
            // (best effort: they also look every second).
            _ = try? await redis.send("XADD", KeyLayout.newLanes, "MAXLEN", "~", 100, "*", "lanes", added)
        }
        return try plan.results(Array(replies.dropFirst()))
    }

    // MARK: - Lease and the holder's reports

    /// Leases up to `count` ready jobs of `lane`: the best priority first, then round robin
    /// across tenants (fair share), FIFO within a tenant. Each comes with a fresh token.
    public func lease(lane: String, count: Int, duration: Duration? = nil) async throws -> [LeasedJob] {
        let leaseMillis = (duration ?? configuration.leaseDuration).milliseconds
        let reply = try await redis.run(
            scripts.lease, keys: [KeyLayout.prefix(lane: lane)],
            arguments: [cap, lane, count, leaseMillis, resultTTL])
        guard let flat = reply.array, flat.count >= 2, (flat.count - 2) % 5 == 0,
            let group = flat[0].string, let until = flat[1].int
        else { throw QueueError.unexpectedReply(script: "lease", "\(reply)") }
        var jobs: [LeasedJob] = []
        jobs.reserveCapacity((flat.count - 2) / 5)
        for base in stride(from: 2, to: flat.count, by: 5) {
            guard let raw = flat[base].string, let id = JobID(raw), let attempt = flat[base + 1].int,
                let tenant = flat[base + 2].string
            else { throw QueueError.unexpectedReply(script: "lease", "bad job at \((base - 2) / 5)") }
            jobs.append(
                LeasedJob(
                    id: id, token: "\(group).\(jobs.count + 1)", attempt: attempt, tenant: tenant,
                    payload: flat[base + 3].bytes ?? [], metadata: flat[base + 4].bytes ?? [],
                    leaseUntil: UnixMillis(Int64(until))))
        }
        return jobs
    }

    /// Extends the lease by `duration` from now (default: the configured lease), if `token` is
    /// still the current one. Tells the holder when a cancel was asked for.
    public func heartbeat(_ id: JobID, token: String, duration: Duration? = nil) async throws -> HeartbeatOutcome {
        let leaseMillis = (duration ?? configuration.leaseDuration).milliseconds
        let reply = try await redis.run(
            scripts.heartbeat, keys: [KeyLayout.prefix(id.laneTag)], arguments: [id.rawValue, token, leaseMillis])
        guard let parts = reply.array, let ok = parts.first?.int else {
            throw QueueError.unexpectedReply(script: "heartbeat", "\(reply)")
        }
        if ok == 1, parts.count == 3, let until = parts[2].int {
            return .extended(leaseUntil: UnixMillis(Int64(until)), cancelRequested: parts[1].int == 1)
        }
        return .lost(current: parts.count > 1 ? parts[1].string.flatMap(JobState.init(rawValue:)) : nil)
    }

    /// Records the result of the attempt that `token` holds. Concurrent completes of one lane
    /// are coalesced into one script call (group commit); each is still checked against its own
    /// token.
    ///
    /// `info` is added to the timeline's line (say, the provider, status and latency), and
    /// `usage` (input and output tokens) is kept on the job.
    public func complete(
        _ id: JobID, token: String, result: [UInt8], info: String? = nil, usage: (input: Int, output: Int)? = nil
    ) async throws -> ReportOutcome {
        try await completions.submit(
            CompleteReport(id: id, token: token, result: result, info: info ?? "", usage: usage.map { "\($0.input) \($0.output)" } ?? ""),
            group: id.laneTag.rawValue)
    }

    /// One report of a batched complete.
    struct CompleteReport: Sendable {
        var id: JobID
        var token: String
        var result: [UInt8]
        var info: String
        var usage: String
    }

    /// Sends a batch of completes, all of one lane tag, as one `complete.lua` call.
    static func sendCompletes(
        redis: RedisClient, script: RedisScript, configuration: QueueConfiguration, tag: LaneTag,
        reports: [CompleteReport]
    ) async throws -> [ReportOutcome] {
        var arguments: [any RedisArgument] = [
            configuration.eventStreamMax, configuration.resultTTL.milliseconds, reports.count,
        ]
        arguments.reserveCapacity(3 + reports.count * 5)
        for report in reports { arguments += [report.id.rawValue, report.token, report.result, report.info, report.usage] }
        let reply = try await redis.run(script, keys: [KeyLayout.prefix(tag)], arguments: arguments)
        guard let flat = reply.array, flat.count == reports.count * 2 else {
            throw QueueError.unexpectedReply(script: "complete", "\(reply)")
        }
        return try stride(from: 0, to: flat.count, by: 2).map { index in
            try reportOutcome(.array([flat[index], flat[index + 1]]), script: "complete")
        }
    }

    /// Records a failed attempt. A retryable failure waits out the retry policy's backoff for
    /// `attempt` and runs again, or is `dead` when the attempts are used up; a fatal one is
    /// `failed`.
    public func fail(
        _ id: JobID, token: String, attempt: Int, error: String, retryable: Bool
    ) async throws -> ReportOutcome {
        let backoff = configuration.retryPolicy.delay(afterAttempt: attempt).milliseconds
        let reply = try await redis.run(
            scripts.fail, keys: [KeyLayout.prefix(id.laneTag)],
            arguments: [cap, id.rawValue, token, error, retryable ? 1 : 0, backoff, resultTTL])
        return try Self.reportOutcome(reply, script: "fail")
    }

    /// Gives a leased job back without using up its attempt: after `delay` (waiting to retry),
    /// or at once at the front of its list. For a 429 and for a worker that shuts down; a failed
    /// call is `fail`.
    public func release(_ id: JobID, token: String, delay: Duration = .zero, why: String) async throws -> ReportOutcome {
        let reply = try await redis.run(
            scripts.release, keys: [KeyLayout.prefix(id.laneTag)],
            arguments: [cap, id.rawValue, token, delay.milliseconds, why, resultTTL])
        return try Self.reportOutcome(reply, script: "release")
    }

    /// Which jobs `divert` moves: ones the caller has leased (those that cannot move wait
    /// `wait`, their attempt not counted), or queued ones whose deadline falls within `within`.
    public enum Diversion: Sendable {
        case leased([LeasedJob], wait: Duration)
        case deadlineWithin(Duration, limit: Int)
    }

    /// Moves jobs of `lane`, which is out, to the next lane of their route (`routes`: every route
    /// `lane` is in, by name, with its target lanes in order). A job moves only along its own
    /// route, to a lane it has not left before; it keeps its id. Returns how many moved and how
    /// many could not.
    public func divert(
        lane: String, _ which: Diversion, routes: [String: [String]], why: String
    ) async throws -> (moved: Int, kept: Int) {
        var arguments: [any RedisArgument] = [cap, lane, why]
        switch which {
        case .leased(let jobs, let wait):
            guard !jobs.isEmpty else { return (0, 0) }
            arguments += [DivertMode.leased.rawValue, wait.milliseconds, resultTTL, jobs.count]
            for job in jobs { arguments += [job.id.rawValue, job.token] }
        case .deadlineWithin(let within, let limit):
            arguments += [DivertMode.deadline.rawValue, within.milliseconds, resultTTL, limit]
        }
        let triples = routes.sorted { $0.key < $1.key }.flatMap { route, lanes in lanes.map { (route, $0) } }
        arguments.append(triples.count)
        for (route, target) in triples { arguments += [route, target, LaneTag(lane: target).rawValue] }
        let reply = try await redis.run(scripts.divert, keys: [KeyLayout.prefix(lane: lane)], arguments: arguments)
        guard let parts = reply.array, parts.count == 2, let moved = parts[0].int, let kept = parts[1].int else {
            throw QueueError.unexpectedReply(script: "divert", "\(reply)")
        }
        return (moved, kept)
    }

    static func reportOutcome(_ reply: RedisValue, script: String) throws -> ReportOutcome {
        guard let parts = reply.array, parts.count == 2, let ok = parts[0].int, let state = parts[1].string else {
            throw QueueError.unexpectedReply(script: script, "\(reply)")
        }
        if ok == 1, let recorded = JobState(rawValue: state) { return .recorded(recorded) }
        return .refused(current: JobState(rawValue: state))
    }

    // MARK: - Cancel and read

    /// Cancels a job: at once if it is not running; at the holder's next report if it is leased.
    public func cancel(_ id: JobID) async throws -> CancelOutcome {
        let reply = try await redis.run(
            scripts.cancel, keys: [KeyLayout.prefix(id.laneTag)], arguments: [cap, id.rawValue, resultTTL])
        guard let parts = reply.array, parts.count == 2, let outcome = parts[0].string else {
            throw QueueError.unexpectedReply(script: "cancel", "\(reply)")
        }
        switch CancelReply(rawValue: outcome) {
        case .cancelled: return .cancelled
        case .cancelRequested: return .cancelRequested
        case .notFound: return .notFound
        case .finished:
            if let state = parts[1].string.flatMap(JobState.init(rawValue:)) { return .alreadyFinished(state) }
            fallthrough
        case nil: throw QueueError.unexpectedReply(script: "cancel", "\(reply)")
        }
    }

    /// Reads a job; nil when it is unknown (or its result TTL has passed).
    public func get(_ id: JobID) async throws -> Job? {
        try JobRecord(id: id, reply: try await redis.send("HGETALL", KeyLayout.job(id)))?.job()
    }

    /// The job with only `fields` of its hash read (and its state): a listing's light read, which
    /// leaves out the request and result (up to 1 MiB each). Fields not read are empty in the Job.
    /// nil when the job is gone.
    public func get(_ id: JobID, fields names: [String]) async throws -> Job? {
        let names = names.contains("state") ? names : names + ["state"]
        let reply = try await redis.send(RedisCommand("HMGET", [KeyLayout.job(id)] + names))
        guard let values = reply.array, values.count == names.count else { throw QueueError.unexpectedReply(script: "HMGET", "\(reply)") }
        var fields: [String: [UInt8]] = [:]
        for (name, value) in zip(names, values) { if let bytes = value.bytes { fields[name] = bytes } }
        return fields.isEmpty ? nil : try JobRecord(id: id, fields: fields).job()
    }

    /// The hash fields a job list shows (id, lane, tenant, state, attempts, created): `list`'s `fields`.
    public static let listedFields = ["lane", "tenant", "state", "attempts", "created"]

    /// Whether API key `key` may submit `count` jobs now under `limits`; when it may, the rate
    /// bucket is debited. Admitted always when the limits are empty (without a round trip).
    public func admit(key: Int64, count: Int, limits: KeyLimits) async throws -> Admission {
        guard !limits.isEmpty else { return .admitted }
        let reply = try await redis.run(
            scripts.admit, keys: [KeyLayout.submitBucket(key: key), KeyLayout.openJobs],
            arguments: [
                String(key), count, limits.submitRate.map { String($0) } ?? "", limits.effectiveBurst ?? 0,
                limits.maxQueued.map(String.init) ?? "",
            ])
        guard let parts = reply.array, let outcome = parts.first?.string else {
            throw QueueError.unexpectedReply(script: "admit", "\(reply)")
        }
        let value = parts.count > 1 ? (parts[1].int ?? 0) : 0
        switch AdmitReply(rawValue: outcome) {
        case .ok: return .admitted
        case .rateLimited: return .rateLimited(retryAfterMilliseconds: value)
        case .overBurst: return .overBurst(burst: value)
        case .overCap: return .overCap(open: value)
        case nil: throw QueueError.unexpectedReply(script: "admit", "\(reply)")
        }
    }

    /// How many jobs submitted with API key `key` have not finished yet.
    public func openJobs(key: Int64) async throws -> Int {
        try await redis.send("HGET", KeyLayout.openJobs, String(key)).string.flatMap { Int($0) } ?? 0
    }

    /// A job's timeline, oldest first: its creation, then every state it entered. nil when the
    /// job is unknown (or its result TTL has passed).
    public func timeline(_ id: JobID) async throws -> [TimelineEntry]? {
        let reply = try await redis.send("HMGET", KeyLayout.job(id), "created", "not_before", "log", "why")
        guard let values = reply.array, values.count == 4 else { throw QueueError.unexpectedReply(script: "HMGET", "\(reply)") }
        var fields: [String: [UInt8]] = [:]
        for (name, value) in zip(["created", "not_before", "log", "why"], values) { if let bytes = value.bytes { fields[name] = bytes } }
        return JobRecord(id: id, fields: fields).timeline()
    }

    /// A page of `tenant`'s jobs, newest first: in `lane` or in every lane, in `state` or any,
    /// older than `cursor` (a job id's 26-character time-ordered part, from an earlier page's
    /// `nextCursor`). At most `scanBudget` index entries are examined per lane, so that a rare
    /// state cannot make one call scan a million jobs; a page may then hold fewer than `limit`
    /// jobs and still have a `nextCursor`. `fields`: read only those of each job's hash
    /// (`get(_:fields:)`), not the whole job.
    public func list(
        tenant: String, lane: String? = nil, state: JobState? = nil, limit: Int, cursor: String? = nil,
        scanBudget: Int = 5_000, fields: [String]? = nil
    ) async throws -> JobPage {
        let lanes: [String]
        if let lane { lanes = [lane] } else { lanes = try await self.lanes() }
        struct Candidate { var id: JobID; var order: Substring }
        var candidates: [Candidate] = []
        var frontier: Substring? = nil  // the newest point below which some lane was not examined
        for lane in lanes {
            let tag = LaneTag(lane: lane)
            let bound = cursor.map { "(job_" + tag.rawValue + $0 } ?? "+"
            let reply = try await redis.run(
                scripts.list, keys: [KeyLayout.prefix(tag)],
                arguments: [lane, tenant, bound, limit + 1, state?.rawValue ?? "", scanBudget])
            guard let parts = reply.array, let stop = parts.first?.string else {
                throw QueueError.unexpectedReply(script: "list", "\(reply)")
            }
            if let stopID = JobID(stop), frontier.map({ stopID.ordering > $0 }) ?? true { frontier = stopID.ordering }
            for index in stride(from: 1, to: parts.count - 1, by: 2) {
                if let id = parts[index].string.flatMap(JobID.init) { candidates.append(Candidate(id: id, order: id.ordering)) }
            }
        }
        if let frontier { candidates.removeAll { $0.order <= frontier } }
        candidates.sort { $0.order > $1.order }
        let page = candidates.prefix(limit)
        let nextCursor: Substring? = candidates.count > limit ? page.last?.order : frontier
        // Read concurrently, so that the client pipelines the reads; a job that expired since
        // the index was read is left out.
        let found = try await withThrowingTaskGroup(of: (Int, Job?).self) { group in
            for (index, candidate) in page.enumerated() {
                group.addTask {
                    if let fields { return (index, try await self.get(candidate.id, fields: fields)) }
                    return (index, try await self.get(candidate.id))
                }
            }
            var found = [Job?](repeating: nil, count: page.count)
            for try await (index, job) in group { found[index] = job }
            return found
        }
        return JobPage(jobs: found.compactMap { $0 }, nextCursor: nextCursor.map(String.init))
    }

    // MARK: - Lanes, counts, events

    /// Every lane that has had a job.
    public func lanes() async throws -> [String] {
        let reply = try await redis.send("SMEMBERS", KeyLayout.lanes)
        return (reply.array ?? []).compactMap(\.string).sorted()
    }

    /// How many jobs of `lane` are ready, leased and delayed (or waiting to retry).
    public func counts(lane: String) async throws -> LaneCounts {
        let replies = try await redis.pipeline([
            RedisCommand("HGET", KeyLayout.meta(lane: lane), "ready"),
            RedisCommand("HGET", KeyLayout.meta(lane: lane), "leased"),
            RedisCommand("ZCARD", KeyLayout.delayed(lane: lane)),
        ])
        return LaneCounts(ready: replies[0].int ?? 0, leased: replies[1].int ?? 0, delayed: replies[2].int ?? 0)
    }

    /// `lane`'s counts and the creation time of its oldest ready job, read atomically.
    public func stats(lane: String) async throws -> LaneStats {
        let reply = try await redis.run(scripts.laneStats, keys: [KeyLayout.prefix(lane: lane)], arguments: [lane])
        guard let parts = reply.array, parts.count == 4, let ready = parts[0].int, let leased = parts[1].int,
            let delayed = parts[2].int
        else { throw QueueError.unexpectedReply(script: "lane-stats", "\(reply)") }
        return LaneStats(
            lane: lane, counts: LaneCounts(ready: ready, leased: leased, delayed: delayed),
            oldestReadyCreatedAt: parts[3].string.flatMap { Int64($0) }.map(UnixMillis.init))
    }

    /// Reads `lane`'s event stream from just after `cursor` (from the start when nil), at most
    /// `count` stream entries. An entry records one transition made by one script call, for
    /// one or more jobs; it is returned as one `JobEvent` per job, all with the entry's id.
    public func events(lane: String, after cursor: String? = nil, count: Int = 1000) async throws -> [JobEvent] {
        let start = cursor.map { "(" + $0 } ?? "-"
        let reply = try await redis.send("XRANGE", KeyLayout.events(lane: lane), start, "+", "COUNT", count)
        var events: [JobEvent] = []
        for entry in reply.array ?? [] {
            guard let parts = entry.array, parts.count == 2, let streamID = parts[0].string,
                let flat = parts[1].array
            else { continue }
            var fields: [String: String] = [:]
            for index in stride(from: 0, to: flat.count - 1, by: 2) {
                if let name = flat[index].string { fields[name] = flat[index + 1].string }
            }
            guard let jobs = fields["jobs"], let to = fields["to"].flatMap(JobState.init(rawValue:)),
                let at = fields["t"].flatMap({ Int64($0) })
            else { continue }
            let from = fields["from"].flatMap(JobState.init(rawValue:))
            for raw in jobs.split(separator: ",") {
                guard let job = JobID(String(raw)) else { continue }
                events.append(
                    JobEvent(
                        streamID: streamID, job: job, lane: fields["lane"] ?? lane, from: from, to: to,
                        at: UnixMillis(at), info: fields["info"]))
            }
        }
        return events
    }

    // MARK: - Maintenance

    /// One maintenance pass over `lane`: reap expired leases, promote due delayed jobs, expire
    /// jobs past their deadline. Each script moves at most `maintenanceBatch` jobs per call, and
    /// is called again while it has more to do. Safe to run from many processes at once.
    public func maintain(lane: String) async throws -> MaintenanceReport {
        var report = MaintenanceReport()
        let keys = [KeyLayout.prefix(lane: lane)]
        let batch = configuration.maintenanceBatch
        while true {
            let reaped = try await redis.run(scripts.reap, keys: keys, arguments: [cap, lane, batch, resultTTL])
            let counts = (reaped.array ?? []).map { $0.int ?? 0 }
            guard counts.count == 4 else { throw QueueError.unexpectedReply(script: "reap", "\(reaped)") }
            report.requeued += counts[0]
            report.dead += counts[1]
            report.cancelled += counts[2]
            if counts[3] < batch { break }  // fewer expired lease groups than the batch: done
        }
        while true {
            let promoted = try await redis.run(scripts.promote, keys: keys, arguments: [cap, lane, batch]).int ?? 0
            report.promoted += promoted
            if promoted < batch { break }
        }
        while true {
            let expired = try await redis.run(scripts.expire, keys: keys, arguments: [cap, lane, batch, resultTTL]).int ?? 0
            report.expired += expired
            if expired < batch { break }
        }
        let trimmed = try await redis.run(scripts.trimIndex, keys: keys, arguments: [lane, 100, 50])
        report.indexTrimmed = trimmed.int ?? 0
        report.eventsTrimmed = try await redis.run(scripts.trimEvents, keys: keys, arguments: [configuration.eventStreamCap]).int ?? 0
        return report
    }

    /// A maintenance pass over every lane.
    public func maintainAll() async throws -> MaintenanceReport {
        var total = MaintenanceReport()
        for lane in try await lanes() { total = total + (try await maintain(lane: lane)) }
        return total
    }
}

/// The words the scripts answer or are told with, named once on the Swift side (the Lua keeps
/// its strings; each script's header lists them).
extension JobQueue {
    /// cancel.lua's outcome.
    enum CancelReply: String {
        case cancelled, finished
        case cancelRequested = "cancel_requested"
        case notFound = "not_found"
    }

    /// admit.lua's outcome.
    enum AdmitReply: String {
        case ok
        case rateLimited = "rate_limited"
        case overBurst = "over_burst"
        case overCap = "over_cap"
    }

    /// divert.lua's ARGV[4]: which jobs it moves.
    enum DivertMode: String {
        case leased, deadline
    }
}
