/// What Sluice knows about a job besides the provider's request bytes: where it came from (a
/// route, a batch line, the synchronous facade), how its request is written, and what the client
/// attached (a callback URL, metadata). Stored in the job's `meta` hash field; written by
/// `encoded` and read by `init(decoding:)`, and nowhere else.
///
/// Why a hand-written codec: the envelope is written once per job on single and bulk submit
/// (the hot paths) and read once per lease, per finished job (webhooks, archive) and per
/// `GET /v1/jobs/{id}`. `encoded` writes bytes directly (a bulk of 10,000 jobs must not pay
/// 10,000 `JSONEncoder` or `JSONSerialization` round trips), and `init(decoding:)` reads with
/// the strict scanner, keeping the client's `metadata` as the bytes it sent. The format is a
/// JSON object with snake_case keys in key order, the same keys every earlier version wrote
/// (`{"callback_url","metadata","route"}` from submit, `{"endpoint","format","route"}` from the
/// facade, `{"batch","custom_id",…}` from batches), so jobs already in Redis read the same.
/// The `Codable` conformance gives the same keys, for embedding it in other Codable values.
///
/// The route is also a field of its own in the job's hash (`JobSpec.route`): the fallback
/// script reads it there, without decoding JSON.
public struct JobEnvelope: Sendable, Hashable, Codable {
    /// A batch's job: the batch's id.
    public var batch: String?
    /// The submitting key's budget, when it has one (`BudgetPolicy.envelopeText`): the worker
    /// checks it at lease without the key store (tenants' and routes' budgets it reads from the
    /// configuration).
    public var budget: String?
    /// A job the response cache serves: its key and TTL (set at submit when the job, its key,
    /// route or the config asks for caching and the request qualifies).
    public var cache: ResponseCacheTicket?
    /// A webhook receiver for the job's end (checked against SSRF when it is delivered).
    public var callbackURL: String?
    /// A batch's job: the line's `custom_id`.
    public var customID: String?
    /// The facade's embeddings calls (`"endpoint": "embeddings"`).
    public var endpoint: Endpoint?
    /// The API the request is written in, when the worker may have to translate it or give it the
    /// lane's model (the facade and batches say; a job sent to its lane directly goes as it is).
    public var format: ProviderKind?
    /// The client's own metadata, a JSON object, as sent.
    public var metadata: RawJSON?
    /// The route the job was submitted through: the worker gives it the lane's model, and it may
    /// fall back along the route.
    public var route: String?
    /// What the job reserved in its budgets, and when (`Budgets.reservedText`): the settlement
    /// gives back exactly that, in that period, whatever lane the job ended on.
    public var reserved: String?
    /// The W3C `traceparent` of the submit's span (`JobTracing`), so that the worker's and the
    /// webhook sender's spans continue the client's trace; set only while tracing is on.
    public var trace: String?

    /// The provider endpoints a job may call besides the default (chat, messages).
    public enum Endpoint: String, Sendable, Hashable, Codable {
        case embeddings
    }

    public init(
        batch: String? = nil, callbackURL: String? = nil, customID: String? = nil, endpoint: Endpoint? = nil,
        format: ProviderKind? = nil, metadata: RawJSON? = nil, route: String? = nil, cache: ResponseCacheTicket? = nil,
        budget: String? = nil
    ) {
        self.batch = batch
        self.budget = budget
        self.cache = cache
        self.callbackURL = callbackURL
        self.customID = customID
        self.endpoint = endpoint
        self.format = format
        self.metadata = metadata
        self.route = route
    }

    enum CodingKeys: String, CodingKey {
        case batch, budget, cache, callbackURL = "callback_url", customID = "custom_id", endpoint, format, metadata, reserved, route, trace
    }

    /// Whether it says nothing (a job submitted with no route, callback or metadata): stored as
    /// no `meta` field at all.
    public var isEmpty: Bool { self == JobEnvelope() }

    /// The stored form: a JSON object, keys in order, absent fields left out; empty bytes for an
    /// empty envelope.
    public var encoded: [UInt8] {
        guard !isEmpty else { return [] }
        var writer = JSONObjectWriter(capacity: 64 + (metadata?.bytes.count ?? 0))
        if let batch { writer.string("batch", batch) }
        if let budget { writer.string("budget", budget) }
        if let cache { writer.string("cache", cache.text) }
        if let callbackURL { writer.string("callback_url", callbackURL) }
        if let customID { writer.string("custom_id", customID) }
        if let endpoint { writer.string("endpoint", endpoint.rawValue) }
        if let format { writer.string("format", format.rawValue) }
        if let metadata { writer.raw("metadata", metadata.bytes) }
        if let reserved { writer.string("reserved", reserved) }
        if let route { writer.string("route", route) }
        if let trace { writer.string("trace", trace) }
        return writer.finished()
    }

    /// Reads the stored form (any version's). Fields it does not know, or of the wrong type, are
    /// skipped; bytes that are not a JSON object give an empty envelope, so a damaged field can
    /// cost a job its extras but never a worker or a render.
    public init(decoding bytes: [UInt8]) {
        self.init()
        guard !bytes.isEmpty else { return }
        var envelope = JobEnvelope()
        bytes.withUnsafeBufferPointer { buffer in
            func string(_ value: JSONScanner.Value) -> String? {
                value.kind == .string ? JSONScanner.decodeString(buffer, value.range) : nil
            }
            var scanner = JSONScanner(buffer)
            let read: ()? = try? scanner.objectMembers { (key, value) throws(Never) in
                if JSONScanner.stringToken(buffer, key, equals: "route") {
                    envelope.route = string(value)
                } else if JSONScanner.stringToken(buffer, key, equals: "format") {
                    envelope.format = string(value).flatMap(ProviderKind.init(rawValue:))
                } else if JSONScanner.stringToken(buffer, key, equals: "endpoint") {
                    envelope.endpoint = string(value).flatMap(Endpoint.init(rawValue:))
                } else if JSONScanner.stringToken(buffer, key, equals: "callback_url") {
                    envelope.callbackURL = string(value)
                } else if JSONScanner.stringToken(buffer, key, equals: "metadata") {
                    envelope.metadata = value.kind == .object ? RawJSON(unchecked: Array(buffer[value.range])) : nil
                } else if JSONScanner.stringToken(buffer, key, equals: "cache") {
                    envelope.cache = string(value).flatMap(ResponseCacheTicket.init(text:))
                } else if JSONScanner.stringToken(buffer, key, equals: "budget") {
                    envelope.budget = string(value)
                } else if JSONScanner.stringToken(buffer, key, equals: "batch") {
                    envelope.batch = string(value)
                } else if JSONScanner.stringToken(buffer, key, equals: "custom_id") {
                    envelope.customID = string(value)
                } else if JSONScanner.stringToken(buffer, key, equals: "reserved") {
                    envelope.reserved = string(value)
                } else if JSONScanner.stringToken(buffer, key, equals: "trace") {
                    envelope.trace = string(value)
                }
            }
            if read == nil { envelope = JobEnvelope() }
        }
        self = envelope
    }
}

extension JobSpec {
    /// A job whose `metadata` is `envelope` (its stored form) and whose `route` is the envelope's.
    public init(
        lane: String, tenant: String = "default", priority: Int = 0, payload: [UInt8], idempotencyKey: String? = nil,
        notBefore: UnixMillis? = nil, deadline: UnixMillis? = nil, maxAttempts: Int = 3, envelope: JobEnvelope
    ) {
        self.init(
            lane: lane, tenant: tenant, priority: priority, payload: payload, idempotencyKey: idempotencyKey,
            notBefore: notBefore, deadline: deadline, maxAttempts: maxAttempts, metadata: envelope.encoded)
        route = envelope.route
    }

    /// The job's envelope. Setting it writes the stored form and the route's own field; reading
    /// it decodes `metadata`.
    public var envelope: JobEnvelope {
        get { JobEnvelope(decoding: metadata) }
        set {
            metadata = newValue.encoded
            route = newValue.route
        }
    }
}
