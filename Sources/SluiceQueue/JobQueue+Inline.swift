import SluiceCore
import SluiceRedis

/// A synchronous facade call served by the web process itself: the job is created already leased
/// to that process (enqueue-leased.lua), so no worker is woken and the call does not wait for a
/// lease; it is then reported through the holder's calls (`complete`, `fail`, `release`) as any
/// worker's job is.
extension JobQueue {
    /// enqueue-leased.lua, loaded once.
    static let enqueueLeasedScript: RedisScript = {
        do {
            return try QueueScripts.load("enqueue-leased")
        } catch {
            fatalError("Sluice's Lua scripts are missing from the bundle: \(error)")
        }
    }()

    /// Creates one job already leased to the caller (attempt 1, a fresh token, the configured
    /// lease), in one round trip, writing the same record, timeline and events as an enqueue
    /// followed by a lease. The job is nil, nothing created, when the tenant's idempotency key
    /// was already used in the lane (the caller then submits the ordinary way, which answers with
    /// the existing job).
    ///
    /// `first`: commands sent before it in the same pipeline (a provider limiter's acquire), each
    /// with the script it runs, if any (loaded again on NOSCRIPT); their replies come back in
    /// order. They run whatever the enqueue does, and it runs whatever they answer.
    public func enqueueLeased(
        _ spec: JobSpec, submitter: Int64? = nil, first: [(command: RedisCommand, script: RedisScript?)] = []
    ) async throws -> (job: LeasedJob?, replies: [RedisValue]) {
        do { try spec.validate() } catch { throw QueueError.invalidSpec(index: 0, error) }
        guard spec.notBefore == nil else { throw QueueError.invalidSpec(index: 0, .invalid(field: "not_before", reason: "a delayed job cannot be created leased")) }
        let tag = LaneTag(lane: spec.lane)
        var random = SplitMix64()
        let id = JobID.generate(lane: tag, unixMillis: UnixMillis.current().value, using: &random)
        let script = Self.enqueueLeasedScript
        let call = script.evalshaCommand(
            keys: [KeyLayout.prefix(tag)],
            arguments: [
                configuration.eventStreamMax, spec.lane, configuration.idempotencyTTL.milliseconds,
                configuration.leaseDuration.milliseconds, id.rawValue, spec.payload, spec.tenant, spec.priority,
                spec.idempotencyKey ?? "", spec.deadline.map { String($0.value) } ?? "", spec.maxAttempts, spec.metadata,
                spec.route ?? "", submitter.map(String.init) ?? "", spec.why ?? "",
            ])
        // The lane is named in the lanes set as by any enqueue, in the same round trip (outside
        // the lane's slot, so not inside the script): maintenance, which reaps a lost lease and
        // brings back a job given back with a delay, looks only at known lanes.
        let sent = first + [(RedisCommand("SADD", KeyLayout.lanes, spec.lane), nil), (call, script)]
        let replies = try await redis.pipeline(sent)
        let reply = replies[replies.count - 1]
        if let message = reply.errorMessage { throw RedisError.server(message) }
        if replies[replies.count - 2].int == 1 {
            // A lane used for the first time: worker pools that discover lanes start it now.
            _ = try? await redis.send("XADD", KeyLayout.newLanes, "MAXLEN", "~", 100, "*", "lanes", 1)
        }
        let answers = Array(replies.prefix(first.count))
        guard let parts = reply.array, parts.count >= 2, let created = parts[0].int else {
            throw QueueError.unexpectedReply(script: "enqueue-leased", "\(reply)")
        }
        guard created == 1 else { return (nil, answers) }
        guard parts.count == 3, let group = parts[1].string, let until = parts[2].int else {
            throw QueueError.unexpectedReply(script: "enqueue-leased", "\(reply)")
        }
        let job = LeasedJob(
            id: id, token: group + ".1", attempt: 1, tenant: spec.tenant, payload: spec.payload, metadata: spec.metadata,
            leaseUntil: UnixMillis(Int64(until)))
        return (job, answers)
    }
}

/// Serves a synchronous facade call in the web process itself, when it can: the job is created
/// already leased to this process, the provider is called under its limits, and the result is
/// recorded as a worker records it. SluiceHTTP sees only this protocol (SluiceWorker implements
/// it: `InlineCalls`), so the web layer does not depend on the workers.
public protocol InlineCaller: Sendable {
    /// Takes a provider permit and creates `spec`'s job leased to this process, together; nil
    /// when the call is not served here (no provider client for the lane here, the cap of inline
    /// calls reached, the breaker not closed, the limits refused a moment ago, an idempotency key
    /// already used): the caller submits the job the ordinary way. A call returned to run must
    /// be run.
    func start(_ spec: JobSpec, submitter: Int64?) async throws -> InlineStart?
}

/// What became of a facade call offered to `InlineCaller.start`.
public enum InlineStart: Sendable {
    /// Leased to this process: run it.
    case run(any InlineCall)
    /// Created, but the provider's limits held it back: it was given to the workers (its lease
    /// released, its attempt not counted). Wait on it.
    case queued(JobID)
}

/// A facade call created leased to this process, ready to run.
public protocol InlineCall: Sendable {
    var id: JobID { get }
    /// Calls the provider and records the outcome through the holder's reports. Returns the
    /// answer recorded when the job succeeded; nil when it finished otherwise (a final failure)
    /// or is back in its lane for the workers (a 429, a retryable failure, or a cancellation of
    /// this task, which releases it without using up its attempt): wait on the job then.
    func run() async -> [UInt8]?
}
