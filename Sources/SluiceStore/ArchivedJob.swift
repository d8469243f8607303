import SluiceCore

/// A finished job as the archive keeps it.
public struct ArchivedJob: Sendable, Hashable {
    public var id: String
    public var tenant: String
    public var keyID: Int64?
    public var lane: String
    public var state: String
    public var createdAt: UnixMillis
    public var finishedAt: UnixMillis
    /// The batch it belongs to, and its `custom_id` there.
    public var batch: String?
    public var customID: String?
    /// The model the usage ledger books it under.
    public var model: String
    public var inputTokens: Int?
    public var outputTokens: Int?
    /// US dollars, from the configured prices (0 when the model has none).
    public var cost: Double
    /// The job's hash as Redis held it (`JobRecord.encoded`).
    public var record: [UInt8]
    /// Answered from the response cache (timeline `cached` or `coalesced`): no provider call.
    public var cached = false
    /// US dollars the cache saved: the cached answer's usage at the list price (0 unless `cached`).
    public var savedUSD = 0.0
    /// Completed through its provider's batch API (booked at the batch price: `cost` is the list
    /// price less the provider's discount).
    public var batched = false
    /// US dollars the provider's batch discount saved (0 unless `batched`).
    public var batchSavedUSD = 0.0

    public init(
        id: String, tenant: String, keyID: Int64?, lane: String, state: String, createdAt: UnixMillis, finishedAt: UnixMillis,
        batch: String?, customID: String?, model: String, inputTokens: Int?, outputTokens: Int?, cost: Double, record: [UInt8]
    ) {
        self.id = id
        self.tenant = tenant
        self.keyID = keyID
        self.lane = lane
        self.state = state
        self.createdAt = createdAt
        self.finishedAt = finishedAt
        self.batch = batch
        self.customID = customID
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cost = cost
        self.record = record
    }
}

/// One row of a usage report.
public struct UsageRow: Sendable, Hashable {
    /// The model, or the key's id (as text), or the tenant: what the report is grouped by.
    public var group: String
    public var requests: Int
    public var succeeded: Int
    public var inputTokens: Int
    public var outputTokens: Int
    public var cost: Double
    /// Of `succeeded`, the jobs answered from the response cache (calls saved).
    public var cached = 0
    /// US dollars the response cache saved (the cached answers' usage at list prices).
    public var savedUSD = 0.0
    /// Jobs completed through a provider's batch API, and the dollars its discount saved.
    public var batched = 0
    public var batchSavedUSD = 0.0
}

/// A webhook delivery that reached a final status, as the archive keeps it.
public struct ArchivedDelivery: Sendable, Hashable {
    public var id: String
    public var subject: String
    public var url: String
    public var type: String
    public var status: String
    public var attempts: Int
    public var createdAt: UnixMillis?
    public var finishedAt: UnixMillis?
    public var lastCode: Int?
    public var lastError: String?
    /// One line per attempt: `<ms> <status code or error>`.
    public var log: String

    public init(
        id: String, subject: String, url: String, type: String, status: String, attempts: Int, createdAt: UnixMillis?,
        finishedAt: UnixMillis?, lastCode: Int?, lastError: String?, log: String
    ) {
        self.id = id
        self.subject = subject
        self.url = url
        self.type = type
        self.status = status
        self.attempts = attempts
        self.createdAt = createdAt
        self.finishedAt = finishedAt
        self.lastCode = lastCode
        self.lastError = lastError
        self.log = log
    }
}
