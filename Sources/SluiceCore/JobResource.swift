/// A job as clients see it: the body of `GET /v1/jobs/{id}`, an entry of `GET /v1/jobs`, the
/// `data` of a job's webhook, and what the CLI prints. Made from a `Job` (live from Redis, or
/// archived: the archive keeps the job's hash as Redis held it), and written by `encoded`, the
/// one encoder of this document.
///
/// The provider's request and result stay the bytes the queue holds: they are spliced into the
/// output, never decoded and encoded again (they are checked to be JSON, a scan with no
/// allocation, so that a damaged field cannot break the document). Times are Unix seconds. The
/// members are written in key order, the order `JSONSerialization`'s `.sortedKeys` gave before:
/// the OpenAPI schema `Job` (Resources/openapi.json) describes it.
public struct JobResource: Sendable, Hashable {
    public var id: JobID
    public var status: JobState
    public var lane: String
    public var priority: Int
    public var attempts: Int
    public var maxAttempts: Int
    public var createdAt: UnixMillis
    public var notBefore: UnixMillis?
    public var deadline: UnixMillis?
    public var startedAt: UnixMillis?
    public var finishedAt: UnixMillis?
    /// The provider request; nil when the stored bytes are not JSON (rendered as `null`).
    public var request: RawJSON?
    public var result: Result?
    public var error: String?
    /// Tokens the successful call used, when the provider said.
    public var usage: (input: Int, output: Int)? {
        get { usageInput.flatMap { input in usageOutput.map { (input, $0) } } }
        set {
            usageInput = newValue?.input
            usageOutput = newValue?.output
        }
    }
    private var usageInput: Int?
    private var usageOutput: Int?
    /// A cancel was asked for while the job ran (only while it is not finished).
    public var cancelRequested: Bool
    public var idempotencyKey: String?
    /// What the job's envelope adds: the client's metadata and callback, and its route.
    public var metadata: RawJSON?
    public var callbackURL: String?
    public var route: String?
    /// The job this one retries, and the job that retries this one (`POST /v1/jobs/{id}/retry`).
    public var retryOf: JobID?
    public var retriedAs: JobID?

    /// A job's result: a provider's JSON answer is returned as JSON, anything else as text.
    public enum Result: Sendable, Hashable {
        case json(RawJSON)
        case text(String)

        /// JSON when `bytes` hold one JSON object or array, text otherwise.
        public init(_ bytes: [UInt8]) {
            if let json = RawJSON(validating: bytes), bytes.first(where: { $0 > 0x20 }).map({ $0 == UInt8(ascii: "{") || $0 == UInt8(ascii: "[") }) == true {
                self = .json(json)
            } else {
                self = .text(String(decoding: bytes, as: UTF8.self))
            }
        }
    }

    /// The resource of `job`: its envelope is decoded here (the one decoder), its request and
    /// result kept as bytes.
    public init(_ job: Job) {
        id = job.id
        status = job.state
        lane = job.lane
        priority = job.priority
        attempts = job.attempts
        maxAttempts = job.maxAttempts
        createdAt = job.createdAt
        notBefore = job.notBefore
        deadline = job.deadline
        startedAt = job.leasedAt
        finishedAt = job.finishedAt
        request = RawJSON(validating: job.payload)
        result = job.result.map(Result.init)
        error = job.error
        usageInput = job.usageInput
        usageOutput = job.usageOutput
        cancelRequested = job.cancelRequested && !job.state.isTerminal
        idempotencyKey = job.idempotencyKey
        let envelope = JobEnvelope(decoding: job.metadata)
        metadata = envelope.metadata
        callbackURL = envelope.callbackURL
        route = envelope.route
        retryOf = job.retryOf
        retriedAs = job.retriedAs
    }

    /// The links every job carries.
    public static func links(_ id: JobID) -> (path: String, cancel: String, events: String) {
        let path = "/v1/jobs/" + id.rawValue
        return (path, path + "/cancel", path + "/events")
    }

    /// The document, as JSON.
    public var encoded: [UInt8] {
        var writer = JSONObjectWriter(capacity: 320 + (request?.bytes.count ?? 0) + (metadata?.bytes.count ?? 0) + resultSize)
        writer.int("attempts", attempts)
        if let callbackURL { writer.string("callback_url", callbackURL) }
        if cancelRequested { writer.bool("cancel_requested", true) }
        writer.int("created_at", Self.seconds(createdAt))
        if let deadline { writer.int("deadline", Self.seconds(deadline)) }
        if let error { writer.string("error", error) }
        if let finishedAt { writer.int("finished_at", Self.seconds(finishedAt)) }
        writer.string("id", id.rawValue)
        if let idempotencyKey { writer.string("idempotency_key", idempotencyKey) }
        writer.string("lane", lane)
        let links = Self.links(id)
        writer.object("links") { inner in
            inner.string("cancel", links.cancel)
            inner.string("events", links.events)
            inner.string("self", links.path)
        }
        writer.int("max_attempts", maxAttempts)
        if let metadata { writer.raw("metadata", metadata.bytes) }
        if let notBefore { writer.int("not_before", Self.seconds(notBefore)) }
        writer.string("object", "job")
        writer.int("priority", priority)
        if let request { writer.raw("request", request.bytes) } else { writer.null("request") }
        switch result {
        case .json(let json): writer.raw("result", json.bytes)
        case .text(let text): writer.string("result", text)
        case nil: break
        }
        if let retriedAs { writer.string("retried_as", retriedAs.rawValue) }
        if let retryOf { writer.string("retry_of", retryOf.rawValue) }
        if let route { writer.string("route", route) }
        if let startedAt { writer.int("started_at", Self.seconds(startedAt)) }
        writer.string("status", status.rawValue)
        if let usage {
            writer.object("usage") { inner in
                inner.int("input_tokens", usage.input)
                inner.int("output_tokens", usage.output)
            }
        }
        return writer.finished()
    }

    private var resultSize: Int {
        switch result {
        case .json(let json): json.bytes.count
        case .text(let text): text.utf8.count + 16
        case nil: 0
        }
    }

    /// A time as the API gives it: whole Unix seconds.
    public static func seconds(_ time: UnixMillis) -> Int64 { time.value / 1000 }
}
