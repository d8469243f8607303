import Synchronization
import Tracing

/// Traces of a job's way through Sluice (`tracing:` in the configuration): the spans the API,
/// the workers and the webhook sender make, and the trace context a job carries from its submit
/// to the process that runs it (`JobEnvelope.trace`, a `traceparent` in the job's stored envelope).
///
/// Off unless `sluice` bootstrapped a tracer and called `enable()`: every traced place asks
/// `isEnabled` (one relaxed atomic load) first and, when it is off, makes no span, reads no header
/// and writes nothing on the job, so a process without `tracing.enabled` does what it did before.
///
/// Attributes name the job, its lane, provider, tenant and attempt, and outcomes (status codes,
/// states): never keys, secrets, request or response bodies.
public enum JobTracing {
    private static let enabled = Atomic<Bool>(false)

    /// Whether spans are made (a tracer is bootstrapped and `enable()` was called).
    @inline(__always) public static var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// Turns tracing on, for good (`sluice` calls it once, after bootstrapping the tracer).
    public static func enable() { enabled.store(true, ordering: .relaxed) }

    /// The span names, one per step of a job.
    public enum Name {
        /// The HTTP submit (server), a child of the client's `traceparent` when it sent one.
        public static let submit = "sluice.submit"
        /// A job leased by a worker, from its lease to its report (consumer).
        public static let lease = "sluice.lease"
        /// One call of the provider (client): its status, and whether it is retried or rate limited.
        public static let attempt = "sluice.provider.call"
        /// The worker's report of the attempt (complete, fail or release), and the state it recorded.
        public static let completion = "sluice.complete"
        /// One attempt of a webhook delivery (client).
        public static let webhook = "sluice.webhook.deliver"
    }

    /// The attribute names.
    public enum Attribute {
        public static let job = "sluice.job.id"
        public static let lane = "sluice.lane"
        public static let provider = "sluice.provider"
        public static let tenant = "sluice.tenant"
        public static let attempt = "sluice.attempt"
        public static let jobs = "sluice.jobs"
        /// The job's state the report recorded (succeeded, retry_wait, dead, queued, …).
        public static let state = "sluice.job.state"
        /// The call's outcome: success, rate_limited, retryable, context_length or fatal.
        public static let outcome = "sluice.outcome"
        public static let retry = "sluice.retry"
        public static let rateLimited = "sluice.rate_limited"
        public static let status = "http.response.status_code"
        public static let delivery = "sluice.webhook.id"
        public static let deliveryAttempt = "sluice.webhook.attempt"
    }

    /// The context that continues `traceparent` (a client's header, or the one a job carries);
    /// nil when there is none or it is malformed (the caller then starts a new trace). Only the
    /// validated header reaches the tracer: its own parser, on failure, would log the whole
    /// carrier.
    public static func context(continuing traceparent: String?) -> ServiceContext? {
        guard let traceparent, let parsed = TraceParent(traceparent) else { return nil }
        var context = ServiceContext.topLevel
        InstrumentationSystem.instrument.extract(["traceparent": parsed.text], into: &context, using: DictionaryCarrier())
        return context
    }

    /// The `traceparent` of `context` (a span's), as a job carries it; nil when the tracer gives none.
    public static func traceparent(of context: ServiceContext) -> String? {
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: DictionaryCarrier())
        return carrier["traceparent"]
    }

    /// Sets the job's attributes on `span`: its id, lane, provider (the lane's first part) and tenant.
    public static func describe(_ span: any Span, job: String?, lane: String, tenant: String) {
        span.updateAttributes { attributes in
            if let job { attributes[Attribute.job] = job }
            attributes[Attribute.lane] = lane
            attributes[Attribute.provider] = provider(ofLane: lane)
            attributes[Attribute.tenant] = tenant
        }
    }

    /// The provider of a lane (`openai/gpt-4o` → `openai`).
    public static func provider(ofLane lane: String) -> String {
        String(lane.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first ?? Substring(lane))
    }

    /// A `[String: String]` carrier, for the one header the tracer reads and writes.
    private struct DictionaryCarrier: Extractor, Injector {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
    }
}
