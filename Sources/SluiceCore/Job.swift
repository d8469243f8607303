#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// What a client hands the queue: one job to enqueue.
public struct JobSpec: Sendable, Hashable {
    /// The lane (provider, or provider and model) whose workers will run it.
    public var lane: String
    /// The tenant that owns it; the unit of fair share within a lane.
    public var tenant: String
    /// Higher runs first, from `JobSpec.priorityRange`; 0 is the default.
    public var priority: Int
    /// The request, opaque bytes (binary-safe).
    public var payload: [UInt8]
    /// Makes a resubmission by the same tenant to the same lane return the first job.
    public var idempotencyKey: String?
    /// The job is not started before this time (a delay).
    public var notBefore: UnixMillis?
    /// The job expires if it has not started by this time.
    public var deadline: UnixMillis?
    /// How many attempts (leases) the job may use before it is dead.
    public var maxAttempts: Int
    /// The job's envelope in its stored form (`JobEnvelope.encoded`; see `envelope`).
    public var metadata: [UInt8]
    /// The route it was submitted through, kept as a field of its own in the job's hash for the
    /// fallback script (also in the envelope; `envelope`'s setter keeps the two the same).
    public var route: String? = nil
    /// A note for the job's first timeline entry (its creation): why it went to this lane, when a
    /// route chose it (`route support (least_busy): mock-b, 14 of 16 free`). Stored as the job
    /// hash's `why` field.
    public var why: String? = nil
    /// The pipeline run and step this job is part of (stored as the job hash's `run` field; the
    /// run engine writes and reads its format). The scripts that end a job tell the run engine
    /// about a job that has one.
    public var run: String? = nil
    /// The job goes through its provider's batch API (decided at submit by
    /// `ModelDirectory.providerBatch`): it waits in its lane's collect set, not its ready queue,
    /// and is stored with `mode=batch`.
    public var providerBatch = false

    /// A job for `lane`; everything but the payload has a default. Call `validate()` (the queue does)
    /// before trusting it.
    public init(
        lane: String, tenant: String = "default", priority: Int = 0, payload: [UInt8],
        idempotencyKey: String? = nil, notBefore: UnixMillis? = nil, deadline: UnixMillis? = nil,
        maxAttempts: Int = 3, metadata: [UInt8] = []
    ) {
        self.lane = lane
        self.tenant = tenant
        self.priority = priority
        self.payload = payload
        self.idempotencyKey = idempotencyKey
        self.notBefore = notBefore
        self.deadline = deadline
        self.maxAttempts = maxAttempts
        self.metadata = metadata
    }

    /// The priorities a job may have.
    public static let priorityRange = -100...100

    /// Checks the spec, naming the first field that is wrong.
    public func validate() throws(JobSpecError) {
        // Byte scans: Character properties would cost more than the enqueue itself.
        if lane.isEmpty || lane.utf8.count > 200 || lane.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
            throw .invalid(field: "lane", reason: "must be 1-200 characters without whitespace or control characters")
        }
        if tenant.isEmpty || tenant.utf8.count > 200 || tenant.utf8.contains(UInt8(ascii: ":")) {
            throw .invalid(field: "tenant", reason: "must be 1-200 characters without ':'")
        }
        if !JobSpec.priorityRange.contains(priority) {
            throw .invalid(field: "priority", reason: "must be within \(JobSpec.priorityRange)")
        }
        if !(1...1000).contains(maxAttempts) {
            throw .invalid(field: "max_attempts", reason: "must be within 1...1000")
        }
        if let key = idempotencyKey, key.isEmpty || key.utf8.count > 255 {
            throw .invalid(field: "idempotency_key", reason: "must be 1-255 characters")
        }
        if let notBefore, let deadline, deadline.value <= notBefore.value {
            throw .invalid(field: "deadline", reason: "must be after not_before")
        }
    }
}

/// Why a `JobSpec` was refused.
public enum JobSpecError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalid(field: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let field, let reason): "\(field): \(reason)"
        }
    }
}

/// A point in time as milliseconds since the Unix epoch, the unit Redis `TIME` gives scripts.
public struct UnixMillis: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var value: Int64
    public init(_ value: Int64) { self.value = value }
    public static func < (lhs: UnixMillis, rhs: UnixMillis) -> Bool { lhs.value < rhs.value }
    /// Saturating: a time plus a duration from outside can never trap.
    public static func + (lhs: UnixMillis, rhs: Duration) -> UnixMillis { UnixMillis(Bounded.add(lhs.value, rhs.milliseconds)) }

    /// The wall clock now. Queue scripts take their time from Redis `TIME` instead; this stamps
    /// ids and records kept outside Redis.
    public static func current() -> UnixMillis {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UnixMillis(Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }
    public var description: String { String(value) }
}

/// A job as read back from the queue.
public struct Job: Sendable, Hashable {
    public var id: JobID
    public var lane: String
    public var tenant: String
    public var priority: Int
    public var state: JobState
    public var payload: [UInt8]
    /// Attempts started so far (leases granted).
    public var attempts: Int
    public var maxAttempts: Int
    public var idempotencyKey: String?
    public var metadata: [UInt8]
    public var createdAt: UnixMillis
    public var notBefore: UnixMillis?
    public var deadline: UnixMillis?
    /// When the current or last lease was granted.
    public var leasedAt: UnixMillis?
    public var finishedAt: UnixMillis?
    /// The result of a succeeded job.
    public var result: [UInt8]?
    /// The last error recorded (a failed attempt, a lost lease, or the final error).
    public var error: String?
    /// A cancel was asked for while the job was leased; the holder's next report records it.
    public var cancelRequested: Bool
    /// Tokens the successful call used, when the provider said: input, output.
    public var usageInput: Int?
    public var usageOutput: Int?
    /// The id of the API key that submitted it, when one did.
    public var submitter: Int64?
    /// The dead or failed job this one retries (`POST /v1/jobs/{id}/retry`), and the new job
    /// that retries this one.
    public var retryOf: JobID? = nil
    public var retriedAs: JobID? = nil

    public init(
        id: JobID, lane: String, tenant: String, priority: Int, state: JobState, payload: [UInt8],
        attempts: Int, maxAttempts: Int, idempotencyKey: String?, metadata: [UInt8],
        createdAt: UnixMillis, notBefore: UnixMillis?, deadline: UnixMillis?, leasedAt: UnixMillis?,
        finishedAt: UnixMillis?, result: [UInt8]?, error: String?, cancelRequested: Bool
    ) {
        self.id = id
        self.lane = lane
        self.tenant = tenant
        self.priority = priority
        self.state = state
        self.payload = payload
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.idempotencyKey = idempotencyKey
        self.metadata = metadata
        self.createdAt = createdAt
        self.notBefore = notBefore
        self.deadline = deadline
        self.leasedAt = leasedAt
        self.finishedAt = finishedAt
        self.result = result
        self.error = error
        self.cancelRequested = cancelRequested
    }
}

/// A job handed to a worker by a lease: what it needs to run the attempt and report on it.
public struct LeasedJob: Sendable, Hashable {
    public var id: JobID
    /// Proves the holder is the current one; every report must carry it.
    public var token: String
    /// Which attempt this is, 1-based.
    public var attempt: Int
    public var tenant: String
    public var payload: [UInt8]
    public var metadata: [UInt8]
    /// When the lease runs out unless it is extended by a heartbeat.
    public var leaseUntil: UnixMillis

    public init(
        id: JobID, token: String, attempt: Int, tenant: String,
        payload: [UInt8], metadata: [UInt8], leaseUntil: UnixMillis
    ) {
        self.id = id
        self.token = token
        self.attempt = attempt
        self.tenant = tenant
        self.payload = payload
        self.metadata = metadata
        self.leaseUntil = leaseUntil
    }
}
