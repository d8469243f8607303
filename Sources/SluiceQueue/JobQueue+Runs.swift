import SluiceCore
import SluiceRedis

/// Pipeline runs on Redis: their hashes, listing, cancel, and the advancer's compare-and-set
/// (the keys are in `KeyLayout+Runs.swift`, the decisions in `RunPlan`).
///
/// Guarantees, each kept by one script: a run that exists has reached the runs stream (its
/// `created` entry is written with it), so the advancer creates its first steps whatever the
/// submitting process does next; every step job's end reaches the stream (the script that ends
/// the job writes it); the advancer records only over the version it decided from.
extension JobQueue {
    /// The run scripts, loaded once.
    struct RunScripts: Sendable {
        let create: RedisScript
        let record: RedisScript
        let cancel: RedisScript
        let trim: RedisScript

        static let shared: RunScripts = {
            do {
                return RunScripts(
                    create: try QueueScripts.load("run-create"), record: try QueueScripts.load("run-record"),
                    cancel: try QueueScripts.load("run-cancel"), trim: try QueueScripts.load("trim-events"))
            } catch {
                // The scripts ship inside the package; without them the build itself is broken.
                fatalError("Sluice's run scripts are missing from the bundle: \(error)")
            }
        }()
    }

    /// What a new run holds besides its id and tenant.
    public struct NewRun: Sendable {
        public var pipeline: String
        /// The definition (JSON), snapshotted.
        public var definition: [UInt8]
        public var input: [UInt8]
        public var metadata: [UInt8]?
        public var callbackURL: String?
        public var idempotencyKey: String?

        public init(
            pipeline: String, definition: [UInt8], input: [UInt8], metadata: [UInt8]? = nil, callbackURL: String? = nil,
            idempotencyKey: String? = nil
        ) {
            self.pipeline = pipeline
            self.definition = definition
            self.input = input
            self.metadata = metadata
            self.callbackURL = callbackURL
            self.idempotencyKey = idempotencyKey
        }
    }

    /// Records a new run and hands it to the advancer (through the runs stream). With an
    /// idempotency key the tenant already used, the first run's id comes back, `created` false.
    public func createRun(_ run: NewRun, tenant: String, submitter: Int64?) async throws -> (id: String, created: Bool) {
        let id = PipelineRun.newID(at: UnixMillis.current().value)
        typealias F = PipelineRun.Field
        var arguments: [any RedisArgument] = [
            id, tenant, run.idempotencyKey ?? "", configuration.idempotencyTTL.milliseconds,
            F.pipeline, run.pipeline, F.definition, run.definition, F.input, run.input,
        ]
        if let submitter { arguments += [F.submitter, String(submitter)] }
        if let metadata = run.metadata { arguments += [F.metadata, metadata] }
        if let url = run.callbackURL { arguments += [F.callback, url] }
        let reply = try await redis.run(RunScripts.shared.create, keys: [KeyLayout.runsPrefix], arguments: arguments)
        guard let parts = reply.array, parts.count == 2, let existing = parts[0].string, let created = parts[1].int else {
            throw QueueError.unexpectedReply(script: "run-create", "\(reply)")
        }
        return (existing, created == 1)
    }

    /// Reads a run; nil when it is unknown (or its result TTL has passed).
    public func run(_ id: String) async throws -> PipelineRun? {
        guard PipelineRun.isID(id) else { return nil }
        let reply = try await redis.send("HGETALL", KeyLayout.run(id))
        return PipelineRun(id: id, fields: Self.hashFields(reply))
    }

    /// Records the advancer's decisions over `version` (see run-record.lua): false when the run
    /// changed meanwhile (nothing written). `status` ends the run when it is a terminal one.
    public func recordRun(
        _ id: String, version: String, status: PipelineRun.Status? = nil, fields: [(String, [UInt8])]
    ) async throws -> Bool {
        var arguments: [any RedisArgument] = [id, version, status?.rawValue ?? "", configuration.resultTTL.milliseconds]
        arguments.reserveCapacity(4 + fields.count * 2)
        for (name, value) in fields { arguments += [name, value] }
        let reply = try await redis.run(RunScripts.shared.record, keys: [KeyLayout.runsPrefix], arguments: arguments)
        guard let ok = reply.int else { throw QueueError.unexpectedReply(script: "run-record", "\(reply)") }
        return ok == 1
    }

    /// Marks a run's end handled (its steps' jobs cancelled, its webhook queued): no later entry
    /// of the stream does it again.
    public func markRunEndHandled(_ id: String) async throws {
        _ = try await redis.send("HSET", KeyLayout.run(id), PipelineRun.Field.endHandled, "1")
    }

    /// What cancelling a run did.
    public enum RunCancelOutcome: Sendable, Hashable {
        case cancelled
        case alreadyFinished(PipelineRun.Status)
        case notFound
    }

    /// Cancels a run that has not ended: it ends at once, no step is created after this, and the
    /// advancer cancels the jobs of its unfinished steps.
    public func cancelRun(_ id: String) async throws -> RunCancelOutcome {
        guard PipelineRun.isID(id) else { return .notFound }
        let reply = try await redis.run(
            RunScripts.shared.cancel, keys: [KeyLayout.runsPrefix], arguments: [id, configuration.resultTTL.milliseconds])
        guard let parts = reply.array, parts.count == 2, let outcome = parts[0].string else {
            throw QueueError.unexpectedReply(script: "run-cancel", "\(reply)")
        }
        switch outcome {
        case "cancelled": return .cancelled
        case "not_found": return .notFound
        default: return .alreadyFinished(parts[1].string.flatMap(PipelineRun.Status.init(rawValue:)) ?? .cancelled)
        }
    }

    /// A page of `tenant`'s runs, newest first, older than `cursor` (a run id from an earlier
    /// page's `nextCursor`). Runs whose hash expired leave the index as they are met.
    public func listRuns(tenant: String, limit: Int, cursor: String? = nil) async throws -> (runs: [PipelineRun], nextCursor: String?) {
        let index = KeyLayout.runIndex(tenant: tenant)
        var maxScore = "+inf"
        var after: String? = nil
        if let cursor, let score = try await redis.send("ZSCORE", index, cursor).string {
            maxScore = score
            after = cursor
        }
        // A few more than asked, for the entries at the cursor's own score and expired ones.
        let reply = try await redis.send("ZREVRANGEBYSCORE", index, maxScore, "-inf", "LIMIT", 0, limit + 50)
        var ids = (reply.array ?? []).compactMap(\.string)
        if let after, let position = ids.firstIndex(of: after) { ids.removeFirst(position + 1) }
        var runs: [PipelineRun] = []
        var gone: [String] = []
        // Read ten at a time, and end the page early past `runPageBytes` (each run holds its
        // input, up to a megabyte, and its output): a page of 100 large runs is not read at once.
        var bytes = 0
        var next = 0
        while next < ids.count, runs.count < limit, bytes < Self.runPageBytes {
            let chunk = ids[next..<min(ids.count, next + 10)]
            let replies = try await redis.pipeline(chunk.map { RedisCommand("HGETALL", KeyLayout.run($0)) })
            for (id, reply) in zip(chunk, replies) {
                guard runs.count < limit, bytes < Self.runPageBytes else { break }
                next += 1
                let fields = Self.hashFields(reply)
                if let run = PipelineRun(id: id, fields: fields) {
                    runs.append(run)
                    bytes += fields.reduce(0) { $0 + $1.key.utf8.count + $1.value.count }
                } else {
                    gone.append(id)
                }
            }
        }
        if !gone.isEmpty { _ = try await redis.send(RedisCommand("ZREM", [index] + gone.map { $0 as any RedisArgument })) }
        let more = next < ids.count
        return (runs, more ? runs.last?.id : nil)
    }

    /// About the most bytes of runs one page of `listRuns` reads (at least one run, whatever its size).
    public static let runPageBytes = 4 << 20

    /// The jobs of run steps, as far as the advancer needs them: state, result and error (nil:
    /// the job is gone).
    public func stepJobs(_ ids: [String]) async throws -> [StepJob?] {
        guard !ids.isEmpty else { return [] }
        let replies = try await redis.pipeline(
            ids.map { id in JobID(id).map { RedisCommand("HMGET", KeyLayout.job($0), "state", "result", "error") } ?? RedisCommand("ECHO", "") })
        return replies.map { reply in
            guard let values = reply.array, values.count == 3, let state = values[0].string.flatMap(JobState.init(rawValue:)) else { return nil }
            return StepJob(state: state, result: values[1].bytes, error: values[2].string)
        }
    }

    /// The job ids a step's idempotency keys point at, item by item (nil: not created), for a
    /// step whose jobs were being created when its run ended.
    public func createdStepJobs(run: String, tenant: String, step: String, lanes: [String]) async throws -> [String?] {
        guard !lanes.isEmpty else { return [] }
        let replies = try await redis.pipeline(
            lanes.enumerated().map { item, lane in
                RedisCommand(
                    "GET", KeyLayout.idempotency(lane: lane, tenant: tenant, key: PipelineRun.idempotencyKey(run: run, step: step, item: item)))
            })
        return replies.map(\.string)
    }

    /// Trims the runs stream up to what the advancer's group has acknowledged.
    public func trimRunEvents(keep: Int) async throws {
        _ = try await redis.run(RunScripts.shared.trim, keys: [KeyLayout.runsPrefix], arguments: [keep])
    }

    static func hashFields(_ reply: RedisValue) -> [String: [UInt8]] {
        var fields: [String: [UInt8]] = [:]
        let flat = reply.array ?? []
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            if let name = flat[index].string { fields[name] = flat[index + 1].bytes ?? [] }
        }
        return fields
    }
}

extension JobQueue {
    /// The run's resource (`PipelineRun.resource`), its steps' jobs read here.
    public func runResource(_ run: PipelineRun, withResults: Bool = true) async throws -> [UInt8] {
        guard withResults else { return run.resource(jobs: [:], withResults: false).jsonBytes }
        let ids = run.steps.values.filter { $0.status == .succeeded }.flatMap(\.jobs)
        var jobs: [String: StepJob] = [:]
        for (id, job) in zip(ids, try await stepJobs(ids)) { if let job { jobs[id] = job } }
        return run.resource(jobs: jobs).jsonBytes
    }
}
