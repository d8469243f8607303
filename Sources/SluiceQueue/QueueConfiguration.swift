import SluiceCore

/// How the queue behaves: lease length, retry backoff, how long results and idempotency keys
/// are kept, and how the maintenance service paces itself.
public struct QueueConfiguration: Sendable, Hashable {
    /// How long a lease lasts unless a heartbeat extends it.
    public var leaseDuration: Duration
    /// The backoff between attempts after a retryable failure.
    public var retryPolicy: RetryPolicy
    /// How long a finished job (and its result) stays in Redis.
    public var resultTTL: Duration
    /// How long an idempotency key maps to its job.
    public var idempotencyTTL: Duration
    /// The size maintenance trims each lane's event stream to, never dropping an entry a
    /// consumer group (the archiver, the webhooks) has not read and acknowledged.
    public var eventStreamCap: Int
    /// The hard cap on each lane's event stream (`XADD MAXLEN ~`), whatever consumers have
    /// read: a guard against a consumer group that nobody reads any more.
    public var eventStreamMax: Int
    /// How often the maintenance service reaps, promotes and expires.
    public var maintenanceInterval: Duration
    /// The most jobs one maintenance script moves per call (it loops until the work is done).
    public var maintenanceBatch: Int
    /// The most jobs in one enqueue script call; larger bulks are split and pipelined.
    public var enqueueChunk: Int
    /// The most completes coalesced into one script call (group commit).
    public var completeBatch: Int

    public init(
        leaseDuration: Duration = .seconds(60), retryPolicy: RetryPolicy = .default,
        resultTTL: Duration = .seconds(7 * 86_400), idempotencyTTL: Duration = .seconds(86_400),
        eventStreamCap: Int = 100_000, eventStreamMax: Int = 2_000_000, maintenanceInterval: Duration = .milliseconds(500),
        maintenanceBatch: Int = 1_000, enqueueChunk: Int = 500, completeBatch: Int = 256
    ) {
        self.leaseDuration = leaseDuration
        self.retryPolicy = retryPolicy
        self.resultTTL = resultTTL
        self.idempotencyTTL = idempotencyTTL
        self.eventStreamCap = eventStreamCap
        self.eventStreamMax = max(eventStreamMax, eventStreamCap)
        self.maintenanceInterval = maintenanceInterval
        self.maintenanceBatch = maintenanceBatch
        self.enqueueChunk = enqueueChunk
        self.completeBatch = completeBatch
    }

    public static let `default` = QueueConfiguration()
}
