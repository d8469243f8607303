import SluiceCore
import SluiceRedis

/// How one enqueue call is sent to Redis: the id each job gets, and the calls of `enqueue.lua`
/// that create them. The plan is pure (the clock reading and the random source come from the
/// caller), so how jobs are chunked and what each call carries is tested without Redis;
/// `JobQueue.enqueue` only sends it.
///
/// A call holds the jobs of one lane and one tenant, at most `enqueueChunk` of them, so that most
/// jobs match the call's defaults and send only their id and payload. Order is kept within each
/// tenant (the only order FIFO promises), and the calls come in the order their lane and tenant
/// first appear.
struct EnqueuePlan {
    /// One call of `enqueue.lua`.
    struct Call {
        /// The tag of the call's lane: its keys' prefix, and the tag of the ids it creates.
        var tag: LaneTag
        /// The indexes of the specs the call carries, in order.
        var positions: [Int]
        /// The script's ARGV, as its header lists them.
        var arguments: [any RedisArgument]
    }

    /// The lanes the specs name, in the order they first appear.
    var lanes: [String]
    /// The id generated for each spec (the job's, unless its idempotency key was used before).
    var ids: [JobID]
    var calls: [Call]

    init<R: RandomNumberGenerator>(
        _ specs: [JobSpec], submitter: Int64?, now: UnixMillis, random: inout R, configuration: QueueConfiguration
    ) {
        var groups: [[Int]] = []
        var groupOf: [String: Int] = [:]
        var lanes: [String] = []
        var seenLanes: Set<String> = []
        for (index, spec) in specs.enumerated() {
            let key = spec.lane + "\u{0}" + spec.tenant
            if let group = groupOf[key] {
                groups[group].append(index)
            } else {
                groupOf[key] = groups.count
                groups.append([index])
            }
            if seenLanes.insert(spec.lane).inserted { lanes.append(spec.lane) }
        }
        var ids: [JobID] = []
        ids.reserveCapacity(specs.count)
        var positionOfID = [Int](repeating: 0, count: specs.count)
        var calls: [Call] = []
        let chunkSize = max(1, configuration.enqueueChunk)
        for indexes in groups {
            let lane = specs[indexes[0]].lane
            let tag = LaneTag(lane: lane)
            for start in stride(from: 0, to: indexes.count, by: chunkSize) {
                let chunk = Array(indexes[start..<min(start + chunkSize, indexes.count)])
                // The call's defaults go once; a job that matches them sends only id and payload.
                let first = specs[chunk[0]]
                var arguments: [any RedisArgument] = [
                    configuration.eventStreamMax, lane, configuration.idempotencyTTL.milliseconds, chunk.count,
                    first.tenant, first.priority, first.maxAttempts, submitter.map(String.init) ?? "",
                ]
                arguments.reserveCapacity(8 + chunk.count * 3)
                for index in chunk {
                    let spec = specs[index]
                    let id = JobID.generate(lane: tag, unixMillis: now.value, using: &random)
                    positionOfID[index] = ids.count
                    ids.append(id)
                    Self.appendJobArguments(spec, id: id, defaults: first, to: &arguments)
                }
                calls.append(Call(tag: tag, positions: chunk, arguments: arguments))
            }
        }
        self.lanes = lanes
        self.ids = positionOfID.map { ids[$0] }
        self.calls = calls
    }

    /// Whether `spec` matches a call's defaults (those of `first`) and carries nothing else: it
    /// then sends only its id and payload.
    static func isPlain(_ spec: JobSpec, defaults first: JobSpec) -> Bool {
        spec.tenant == first.tenant && spec.priority == first.priority && spec.maxAttempts == first.maxAttempts
            && spec.idempotencyKey == nil && spec.notBefore == nil && spec.deadline == nil && spec.metadata.isEmpty
            && spec.route == nil && spec.why == nil && spec.run == nil && !spec.providerBatch
    }

    /// One job's part of the script's ARGV: `id, payload, ''` for a plain job, else the extended
    /// form (`'1'`, then tenant, priority, idempotency key, not_before, deadline, max_attempts,
    /// metadata (the envelope), route, why, run, mode ('batch' for a job that goes through its
    /// provider's batch API); '' for none).
    /// Appended in place: this runs once per job on the submit path.
    static func appendJobArguments(_ spec: JobSpec, id: JobID, defaults first: JobSpec, to arguments: inout [any RedisArgument]) {
        arguments.append(id.rawValue)
        arguments.append(spec.payload)
        if isPlain(spec, defaults: first) {
            arguments.append("")
            return
        }
        arguments.append(contentsOf: [
            "1", spec.tenant, spec.priority, spec.idempotencyKey ?? "",
            spec.notBefore.map { String($0.value) } ?? "", spec.deadline.map { String($0.value) } ?? "",
            spec.maxAttempts, spec.metadata, spec.route ?? "", spec.why ?? "", spec.run ?? "", spec.providerBatch ? "batch" : "",
        ] as [any RedisArgument])
    }

    /// Each spec's result, from the replies of `calls` (in order): a pair per job, `{id, 1}` for
    /// one created now (the planned id) or `{existing id, 0}` for a used idempotency key.
    func results(_ replies: [RedisValue]) throws -> [EnqueueResult] {
        guard replies.count == calls.count else {
            throw QueueError.unexpectedReply(script: "enqueue", "\(replies.count) replies to \(calls.count) calls")
        }
        var results = [EnqueueResult?](repeating: nil, count: ids.count)
        for (reply, call) in zip(replies, calls) {
            if let message = reply.errorMessage { throw RedisError.server(message) }
            guard let flat = reply.array, flat.count == call.positions.count * 2 else {
                throw QueueError.unexpectedReply(script: "enqueue", "\(reply)")
            }
            for (offset, index) in call.positions.enumerated() {
                if flat[offset * 2 + 1] == .integer(1) {
                    results[index] = EnqueueResult(id: ids[index], created: true)
                    continue
                }
                // An idempotent resubmission: the reply names the existing job.
                guard let raw = flat[offset * 2].string, let id = JobID(raw) else {
                    throw QueueError.unexpectedReply(script: "enqueue", "bad id \(flat[offset * 2])")
                }
                results[index] = EnqueueResult(id: id, created: false)
            }
        }
        return try results.map { result in
            guard let result else { throw QueueError.unexpectedReply(script: "enqueue", "a job without a reply") }
            return result
        }
    }
}
