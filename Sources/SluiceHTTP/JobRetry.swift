import SluiceCore
import SluiceQueue

/// Retries a dead or failed job as a new one, for `POST /v1/jobs/{id}/retry` and the dashboard's
/// Retry button: the old job is left as it is (its record, usage line and webhook stay); the new
/// job has its lane, tenant, request, priority, metadata and max_attempts (fresh attempts), its
/// deadline only if still ahead, the note `retry of <id>` on its first timeline entry, and the
/// idempotency key `retry:<id>`; a second retry answers the same new job (by the old job's `retried_as`,
/// or the key while the old one is archived). The two are linked
/// (`retry_of`, `retried_as`: retry-link.lua).
struct JobRetry: Sendable {
    let queue: JobQueue
    let lookup: JobLookup
    let admission: KeyAdmission

    /// The final states a retry accepts: the job gave up (attempts used up, or a fatal error).
    /// A cancelled or expired job was stopped on purpose, a succeeded one has its answer.
    static let retryableStates: Set<JobState> = [.dead, .failed]

    /// Retries job `id` as `key` may: 404 when the key may not see it, 409 when it is not dead or
    /// failed. The new job's enqueue result.
    func retry(_ id: JobID, by key: APIKey) async throws -> EnqueueResult {
        let old: Job
        if let live = try await lookup.live(id, by: key) {
            old = live
        } else {
            guard let archived = try await lookup.archive.job(id), archived.tenant == key.tenant || key.scopes.contains(.admin),
                let record = JobRecord(id: id, encoded: archived.record)
            else { throw APIError.notFound }
            old = try record.job()
        }
        guard Self.retryableStates.contains(old.state) else {
            throw APIError(.conflict, type: "conflict", message: "only a dead or failed job may be retried; this one is \(old.state.rawValue)")
        }
        // A job retried before answers its retry, also once the idempotency key has expired.
        if let retriedAs = old.retriedAs { return EnqueueResult(id: retriedAs, created: false) }
        return try await retry([old], by: key)[0]
    }

    /// The most jobs one filtered retry takes.
    static let maxSelected = 1000
    /// The most bytes of requests (and results) one filtered retry holds: 1,000 jobs of up to
    /// 1 MiB each would be a gigabyte in memory, and again in the enqueue, from one call.
    static let maxSelectedBytes = 32 << 20

    /// The jobs of `tenant` a filtered retry takes: in `state` (dead or failed), in `lane` (any
    /// when nil), created before `before` (any when nil), not retried already, newest first, at
    /// most `limit` and `maxBytes` of requests and results (at least one job). At most 50 pages
    /// of 100 are read, so a call is bounded whatever Redis holds; a call that stops short leaves
    /// the rest to the next.
    func select(
        tenant: String, lane: String?, state: JobState, before: UnixMillis?, limit: Int, maxBytes: Int = maxSelectedBytes
    ) async throws -> [Job] {
        var chosen: [Job] = []
        var bytes = 0
        var cursor: String? = nil
        pages: for _ in 0..<50 {
            let page = try await queue.list(tenant: tenant, lane: lane, state: state, limit: 100, cursor: cursor)
            for job in page.jobs where job.state == state && job.retriedAs == nil {
                if let before, job.createdAt >= before { continue }
                let size = Bounded.add(job.payload.count, job.result?.count ?? 0)
                guard chosen.count < limit, chosen.isEmpty || Bounded.add(bytes, size) <= maxBytes else { break pages }
                chosen.append(job)
                bytes = Bounded.add(bytes, size)
            }
            guard let next = page.nextCursor else { break }
            cursor = next
        }
        return chosen
    }

    /// Retries `jobs` (each already checked: visible to the key, dead or failed), admitted at
    /// once; their results in order.
    func retry(_ jobs: [Job], by key: APIKey) async throws -> [EnqueueResult] {
        guard !jobs.isEmpty else { return [] }
        let now = UnixMillis.current()
        let specs = jobs.map { Self.spec(of: $0, now: now) }
        try await admission.admit(key, count: specs.count)
        let results = try await admission.budgeted(specs, key: key) { specs in try await queue.enqueue(specs, submitter: key.id) }
        for (old, result) in zip(jobs, results) { try await queue.linkRetry(of: old.id, as: result.id) }
        return results
    }

    /// The new job that retries `old`.
    static func spec(of old: Job, now: UnixMillis) -> JobSpec {
        var spec = JobSpec(
            lane: old.lane, tenant: old.tenant, priority: old.priority, payload: old.payload, idempotencyKey: "retry:\(old.id.rawValue)",
            deadline: old.deadline.flatMap { $0 > now ? $0 : nil }, maxAttempts: old.maxAttempts, metadata: old.metadata)
        spec.why = "retry of \(old.id.rawValue)"
        return spec
    }
}
