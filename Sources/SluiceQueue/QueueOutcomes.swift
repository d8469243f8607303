import SluiceCore

/// What an enqueue did with one spec.
public struct EnqueueResult: Sendable, Hashable {
    /// The job's id: a new one, or the existing job's for a repeated idempotency key.
    public var id: JobID
    /// False when the idempotency key was seen before and no job was created.
    public var created: Bool

    public init(id: JobID, created: Bool) {
        self.id = id
        self.created = created
    }
}

/// The answer to a report (complete or fail) from a lease holder.
public enum ReportOutcome: Sendable, Hashable {
    /// The report was recorded; the job is now in this state.
    case recorded(JobState)
    /// The token is not the current one (a stale or reaped lease): nothing changed. The job's
    /// present state is given, or nil if the job is unknown.
    case refused(current: JobState?)
}

/// The answer to a heartbeat.
public enum HeartbeatOutcome: Sendable, Hashable {
    /// The lease now runs until `leaseUntil`. If `cancelRequested`, the holder should stop and
    /// report; its report will record `cancelled`.
    case extended(leaseUntil: UnixMillis, cancelRequested: Bool)
    /// The caller no longer holds the lease; the job's present state is given.
    case lost(current: JobState?)
}

/// The answer to a cancel.
public enum CancelOutcome: Sendable, Hashable {
    /// The job was not running and is cancelled now.
    case cancelled
    /// The job is leased: the holder's next report records `cancelled`.
    case cancelRequested
    /// The job had already finished in this state; nothing changed.
    case alreadyFinished(JobState)
    case notFound
}

/// What one maintenance pass over a lane did.
public struct MaintenanceReport: Sendable, Hashable {
    public var requeued = 0
    public var dead = 0
    public var cancelled = 0
    public var promoted = 0
    public var expired = 0
    /// Listing-index entries of expired jobs dropped (housekeeping, not a job transition).
    public var indexTrimmed = 0
    /// Event-stream entries every consumer group had read, dropped (housekeeping).
    public var eventsTrimmed = 0

    public init() {}

    public var total: Int { requeued + dead + cancelled + promoted + expired }

    public static func + (lhs: MaintenanceReport, rhs: MaintenanceReport) -> MaintenanceReport {
        var sum = lhs
        sum.requeued += rhs.requeued
        sum.dead += rhs.dead
        sum.cancelled += rhs.cancelled
        sum.promoted += rhs.promoted
        sum.expired += rhs.expired
        sum.indexTrimmed += rhs.indexTrimmed
        sum.eventsTrimmed += rhs.eventsTrimmed
        return sum
    }
}

/// How many jobs of a lane are in each live structure.
public struct LaneCounts: Sendable, Hashable {
    public var ready: Int
    public var leased: Int
    public var delayed: Int

    public init(ready: Int, leased: Int, delayed: Int) {
        self.ready = ready
        self.leased = leased
        self.delayed = delayed
    }
}

/// A lane's state for dashboards and autoscaling: its counts and how old its oldest ready job is.
public struct LaneStats: Sendable, Hashable {
    public var lane: String
    public var counts: LaneCounts
    /// When the oldest job still waiting to be leased was created; nil when none is waiting.
    public var oldestReadyCreatedAt: UnixMillis?

    public init(lane: String, counts: LaneCounts, oldestReadyCreatedAt: UnixMillis?) {
        self.lane = lane
        self.counts = counts
        self.oldestReadyCreatedAt = oldestReadyCreatedAt
    }
}

/// One transition from a lane's event stream.
public struct JobEvent: Sendable, Hashable {
    /// The stream entry id, usable as a cursor.
    public var streamID: String
    public var job: JobID
    public var lane: String
    /// nil for the first event (the job was created).
    public var from: JobState?
    public var to: JobState
    public var at: UnixMillis
    /// A detail: the error of a failed attempt, "lease expired", "cancel requested", ….
    public var info: String?
}

/// Whether a key may submit now (`JobQueue.admit`).
public enum Admission: Sendable, Hashable {
    case admitted
    /// Over the submit rate: this many milliseconds until the request would fit.
    case rateLimited(retryAfterMilliseconds: Int)
    /// The request alone is larger than the key's burst: it can never pass whole.
    case overBurst(burst: Int)
    /// The key already has this many open jobs; the request would take it over its cap.
    case overCap(open: Int)
}

/// One entry of a job's timeline: the state it entered, when, and why (when there is a why).
public struct TimelineEntry: Sendable, Hashable {
    public var at: UnixMillis
    public var state: JobState
    /// "attempt 2", the error of a failed attempt, "lease expired", "cancel requested", ….
    public var info: String?

    public init(at: UnixMillis, state: JobState, info: String? = nil) {
        self.at = at
        self.state = state
        self.info = info
    }
}

/// One page of a tenant's jobs, newest first.
public struct JobPage: Sendable {
    public var jobs: [Job]
    /// Where the next page starts (pass it back as `cursor`); nil at the end.
    public var nextCursor: String?

    public init(jobs: [Job], nextCursor: String?) {
        self.jobs = jobs
        self.nextCursor = nextCursor
    }
}

/// Why the queue refused or could not do something.
public enum QueueError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The spec at `index` of the call is invalid.
    case invalidSpec(index: Int, JobSpecError)
    /// A script answered with a shape the queue does not expect (a bug or a foreign key).
    case unexpectedReply(script: String, String)

    public var description: String {
        switch self {
        case .invalidSpec(let index, let error): "job \(index): \(error)"
        case .unexpectedReply(let script, let detail): "unexpected reply from \(script).lua: \(detail)"
        }
    }
}
