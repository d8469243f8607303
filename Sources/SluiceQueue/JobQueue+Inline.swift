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
    /// followed by a lease. Returns nil, creating nothing, when the tenant's idempotency key was
    /// already used in the lane (the caller then submits the ordinary way, which answers with the
    /// existing job), and for a job with `notBefore`, which cannot run now.
    public func enqueueLeased(_ spec: JobSpec, submitter: Int64? = nil) async throws -> LeasedJob? {
        do { try spec.validate() } catch { throw QueueError.invalidSpec(index: 0, error) }
        guard spec.notBefore == nil else { return nil }
        let tag = LaneTag(lane: spec.lane)
        var random = SplitMix64()
        let id = JobID.generate(lane: tag, unixMillis: UnixMillis.current().value, using: &random)
        let leaseMillis = configuration.leaseDuration.milliseconds
        let script = Self.enqueueLeasedScript
        let call = script.evalshaCommand(
            keys: [KeyLayout.prefix(tag)],
            arguments: [
                configuration.eventStreamMax, spec.lane, configuration.idempotencyTTL.milliseconds, leaseMillis,
                id.rawValue, spec.payload, spec.tenant, spec.priority, spec.idempotencyKey ?? "",
                spec.deadline.map { String($0.value) } ?? "", spec.maxAttempts, spec.metadata, spec.route ?? "",
                submitter.map(String.init) ?? "",
            ])
        // The lane is named in the lanes set as by any enqueue, in the same round trip (outside
        // the lane's slot, so not inside the script): maintenance, which reaps a lost lease and
        // brings back a job given back with a delay, looks only at known lanes.
        var replies = try await redis.pipeline([RedisCommand("SADD", KeyLayout.lanes, spec.lane), call])
        if replies[1].errorMessage?.hasPrefix("NOSCRIPT") == true {
            try await redis.send(RedisCommand("SCRIPT", "LOAD", script.source))
            replies[1] = try await redis.send(call)
        }
        if let message = replies[1].errorMessage { throw RedisError.server(message) }
        if replies[0].int == 1 {
            // A lane used for the first time: worker pools that discover lanes start it now.
            _ = try? await redis.send("XADD", KeyLayout.newLanes, "MAXLEN", "~", 100, "*", "lanes", 1)
        }
        let reply = replies[1]
        guard let parts = reply.array, parts.count >= 2, let created = parts[0].int else {
            throw QueueError.unexpectedReply(script: "enqueue-leased", "\(reply)")
        }
        guard created == 1 else { return nil }
        guard parts.count == 3, let group = parts[1].string, let until = parts[2].int else {
            throw QueueError.unexpectedReply(script: "enqueue-leased", "\(reply)")
        }
        return LeasedJob(
            id: id, token: group + ".1", attempt: 1, tenant: spec.tenant, payload: spec.payload, metadata: spec.metadata,
            leaseUntil: UnixMillis(Int64(until)))
    }
}

/// Serves a synchronous facade call in the web process itself, when it can: the job is created
/// already leased to this process, the provider is called under its limits, and the result is
/// recorded as a worker records it. SluiceHTTP sees only this protocol (SluiceWorker implements
/// it: `InlineCalls`), so the web layer does not depend on the workers.
public protocol InlineCaller: Sendable {
    /// Takes a provider permit and creates `spec`'s job leased to this process; nil when the
    /// call cannot be served here now (no provider client for the lane, the cap of inline calls
    /// reached, the provider's limits or breaker hold calls back, an idempotency key already
    /// used): the caller then submits the job the ordinary way. A call returned must be run.
    func start(_ spec: JobSpec, submitter: Int64?) async throws -> (any InlineCall)?
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
