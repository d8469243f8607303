import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceQueue
import Tracing

/// `/v1/jobs`: submit one job or a bulk of them, read, long-poll, list, follow and cancel.
///
/// - `POST /v1/jobs` (scope submit): enqueue; `Idempotency-Key` makes a resubmission return the
///   first job. 202 with `{id, object, status, created_at, links}`. A body with `"pipeline"`
///   creates a pipeline run instead (`RunsController`).
/// - `POST /v1/jobs/bulk` (scope submit): a JSON array or JSONL of jobs, all or nothing.
/// - `GET /v1/jobs/{id}[?wait=S]` (scope read): the job; `wait` long-polls up to S seconds (at
///   most 60) until it is finished. Another tenant's job is 404, unless the key is admin.
/// - `GET /v1/jobs?state=&lane=&limit=&cursor=` (scope read): the tenant's jobs, newest first;
///   an admin key may add `tenant=` to list another tenant's.
/// - `GET /v1/jobs/{id}/events` (scope read): the job's timeline; with `Accept: text/event-stream`,
///   the timeline and then each transition as it happens (`EventsController`).
/// - `POST /v1/jobs/{id}/cancel` (scope submit): cancel; 409 if it had already finished.
/// - `POST /v1/jobs/{id}/retry` (scope submit): a dead or failed job submitted again as a new job
///   (`retry(_:_:)`); 409 for any other state.
/// - `POST /v1/jobs/retry` (scope submit): the same for the tenant's dead (or failed) jobs that a
///   filter `{lane?, state?, before?, limit?}` selects, at most 1,000 (`retryMany(_:_:)`).
///
/// The two submits are the hot paths: their bodies are read by the strict byte scanner
/// (JobRequest, BulkRequest) and their answers written as bytes (JobDocument), not Codable.
struct JobsController: Sendable {
    let queue: JobQueue
    let waiter: JobWaiter
    let lookup: JobLookup
    let admission: KeyAdmission
    let callbacks: Callbacks
    /// The most jobs, and bytes, in one bulk submit.
    let bulkMaxLines: Int
    let bulkMaxBytes: Int
    /// Creates pipeline runs (`"pipeline"` in a submit); nil: this API serves no pipelines.
    var runs: RunsController? = nil
    /// Serves `GET /v1/jobs/{id}/events` as an event stream when the client asks for one.
    var live: EventsController? = nil

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.post("jobs", use: submit)
        group.post("jobs/bulk", use: submitBulk)
        group.get("jobs", use: list)
        group.get("jobs/:id", use: get)
        group.get("jobs/:id/events", use: events)
        group.post("jobs/:id/cancel", use: cancel)
        group.post("jobs/:id/retry", use: retry)
        group.post("jobs/retry", use: retryMany)
    }

    @Sendable func submit(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        guard JobTracing.isEnabled else { return try await submitJob(request, context, span: nil) }
        // A child of the client's trace when it sent a valid traceparent, else a new trace.
        let parent = JobTracing.context(continuing: request.headers[.traceparent]) ?? .topLevel
        return try await withSpan(JobTracing.Name.submit, context: parent, ofKind: .server) { span in
            try await submitJob(request, context, span: span)
        }
    }

    /// The submit; with tracing on, `span` is the submit's, whose context the job carries.
    private func submitJob(_ request: Request, _ context: SluiceRequestContext, span: (any Span)?) async throws -> Response {
        let key = try context.require(.submit)
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, type: "unsupported_media_type", message: "send application/json")
        }
        let body = try await request.body.collect(upTo: context.maxUploadSize)
        let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!]
        let bytes = Array(buffer: body)
        var job: JobRequest
        do {
            job = try JobRequest(
                json: bytes, tenant: key.tenant, idempotencyKey: idempotencyKey, directory: admission.directory, cache: admission.cache(for: key))
        } catch {
            // A pipeline run (`"pipeline"`, a field no job has) is told apart only once the job
            // parser refused the body: an ordinary job pays nothing for it.
            if let runs, RunsController.isRunRequest(bytes) { return try await runs.submit(bytes, idempotencyKey: idempotencyKey, key: key) }
            throw error
        }
        if let span {
            JobTracing.describe(span, job: nil, lane: job.spec.lane, tenant: job.spec.tenant)
            job.spec.envelope.trace = JobTracing.traceparent(of: span.context)
        }
        try await admission.checkJobs([job.spec], key: key)
        try await callbacks.check([job.spec], key: key)
        try await admission.admit(key, count: 1)
        let result = try await admission.budgeted([job.spec], key: key) { specs in [try await queue.enqueue(specs[0], submitter: key.id)] }[0]
        span?.attributes[JobTracing.Attribute.job] = result.id.rawValue
        let state: JobState
        let createdAt: UnixMillis
        if result.created {
            // A new job: its status follows from the request, and it was created just now (no
            // second round trip on the hot path; the stored time may differ by a clock skew).
            createdAt = UnixMillis.current()
            state = (job.spec.notBefore.map { $0 > createdAt } ?? false) ? .delayed : .queued
        } else {
            // An idempotent replay: the first job as it is now.
            guard let stored = try await queue.get(result.id) else { throw APIError.notFound }
            state = stored.state
            createdAt = stored.createdAt
        }
        var response = Response(
            status: .accepted, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: JobDocument.accepted(result.id, state: state, createdAt: createdAt))))
        if !result.created { response.headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
        return response
    }

    @Sendable func submitBulk(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        guard JobTracing.isEnabled else { return try await submitBulkJobs(request, context, span: nil) }
        let parent = JobTracing.context(continuing: request.headers[.traceparent]) ?? .topLevel
        return try await withSpan(JobTracing.Name.submit, context: parent, ofKind: .server) { span in
            try await submitBulkJobs(request, context, span: span)
        }
    }

    /// The bulk submit; with tracing on, every job carries the context of `span`, the bulk's one submit span.
    private func submitBulkJobs(_ request: Request, _ context: SluiceRequestContext, span: (any Span)?) async throws -> Response {
        let key = try context.require(.submit)
        let type = request.headers[.contentType]?.lowercased() ?? "application/json"
        let jsonLines = type.hasPrefix("application/jsonl") || type.hasPrefix("application/x-ndjson")
            || type.hasPrefix("application/jsonlines")
        guard jsonLines || type.hasPrefix("application/json") else {
            throw APIError(.unsupportedMediaType, type: "unsupported_media_type", message: "send application/json (an array) or application/jsonl")
        }
        let body = try await request.body.collect(upTo: bulkMaxBytes)
        var bulk = try BulkRequest(
            body: Array(buffer: body), jsonLines: jsonLines, tenant: key.tenant, maxLines: bulkMaxLines, directory: admission.directory,
            cache: admission.cache(for: key))
        if let span {
            span.updateAttributes { attributes in
                attributes[JobTracing.Attribute.jobs] = bulk.specs.count
                attributes[JobTracing.Attribute.tenant] = key.tenant
            }
            let trace = JobTracing.traceparent(of: span.context)
            for index in bulk.specs.indices { bulk.specs[index].envelope.trace = trace }
        }
        try await admission.checkJobs(bulk.specs, key: key)
        try await callbacks.check(bulk.specs, key: key)
        try await admission.admit(key, count: bulk.specs.count)
        let results = try await admission.budgeted(bulk.specs, key: key) { specs in try await queue.enqueue(specs, submitter: key.id) }
        return Response(
            status: .accepted, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: JobDocument.bulkAccepted(results))))
    }

    @Sendable func get(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.read)
        let id = try Self.jobID(context)
        let job: Job?
        if let waitText = request.uri.queryParameters["wait"] {
            guard let seconds = Double(waitText), let timeout = Bounded.duration(seconds: seconds, in: .zero...(.seconds(60))) else {
                throw APIError.invalid("'wait' must be a number of seconds from 0 to 60", param: "wait")
            }
            // Check ownership before waiting, so that nobody long-polls another tenant's job.
            guard try await lookup.live(id, by: key) != nil else { return try await lookup.archived(id, by: key).document }
            job = try await admission.parked(key) { try await waiter.wait(for: id, timeout: timeout) }
        } else {
            job = try await queue.get(id)
        }
        guard let job else { return try await lookup.archived(id, by: key).document }
        guard job.tenant == key.tenant || key.scopes.contains(.admin) else { throw APIError.notFound }
        return JobDocument.response(job)
    }

    @Sendable func list(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.read)
        let query = request.uri.queryParameters
        let known: Set<String> = ["state", "lane", "limit", "cursor", "tenant"]
        if let unknown = query.first(where: { !known.contains(String($0.key)) }) {
            throw APIError.invalid("unknown query parameter '\(unknown.key)'", param: String(unknown.key))
        }
        var tenant = key.tenant
        if let asked = query["tenant"].map(String.init), asked != key.tenant {
            guard key.scopes.contains(.admin) else {
                throw APIError(.forbidden, type: "permission", message: "listing another tenant's jobs needs the admin scope", param: "tenant")
            }
            tenant = asked
        }
        let state = try query["state"].map { text in
            guard let state = JobState(rawValue: String(text)) else {
                throw APIError.invalid(
                    "'state' must be one of \(JobState.allCases.map(\.rawValue).joined(separator: ", "))", param: "state")
            }
            return state
        }
        let limit = try Paging.limit(query["limit"])
        let cursor = try Paging.cursor(query["cursor"], isCursor: JobID.isOrdering)
        let lane = query["lane"].map(String.init)
        let page = try await queue.list(tenant: tenant, lane: lane, state: state, limit: limit, cursor: cursor)
        return JobDocument.list(page.jobs, nextCursor: page.nextCursor)
    }

    /// `GET /v1/jobs/{id}/events`: `{"object": "list", "job", "data": [{at, status, info?}…]}`.
    struct Events: ResponseEncodable {
        struct Event: Encodable {
            /// Unix seconds, with milliseconds.
            let at: Double
            let status: String
            /// Left out when the transition has no detail.
            let info: String?
        }

        var object = "list"
        let job: String
        let data: [Event]

        init(_ id: JobID, _ timeline: [TimelineEntry]) {
            job = id.rawValue
            data = timeline.map { Event(at: Double($0.at.value) / 1000, status: $0.state.rawValue, info: $0.info) }
        }
    }

    @Sendable func events(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.read)
        let id = try Self.jobID(context)
        // `Accept: text/event-stream`: the timeline, then each transition live (EventsController).
        if let live, EventsController.wantsStream(request) {
            try await lookup.requireVisible(id, by: key)
            return try await live.jobStream(id, request: request, key: key)
        }
        guard try await lookup.live(id, by: key) != nil else {
            return try Events(id, try await lookup.archived(id, by: key).events).response(from: request, context: context)
        }
        guard let timeline = try await queue.timeline(id) else { throw APIError.notFound }
        return try Events(id, timeline).response(from: request, context: context)
    }

    @Sendable func cancel(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.submit)
        let id = try Self.jobID(context)
        guard try await lookup.live(id, by: key) != nil else {
            let state = try await lookup.archived(id, by: key).state
            throw APIError(.conflict, type: "conflict", message: "the job already finished: \(state)")
        }
        switch try await queue.cancel(id) {
        case .notFound: throw APIError.notFound
        case .alreadyFinished(let state):
            throw APIError(.conflict, type: "conflict", message: "the job already finished: \(state.rawValue)")
        case .cancelled, .cancelRequested:
            guard let job = try await queue.get(id) else { throw APIError.notFound }
            return JobDocument.response(job)
        }
    }

    /// `POST /v1/jobs/{id}/retry`: `JobRetry` (a new job; the dead or failed one is left as it
    /// is; a second retry answers the same new job, `Idempotent-Replayed: true`). 202 with the
    /// new job; 409 unless the job is dead or failed.
    @Sendable func retry(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.submit)
        let id = try Self.jobID(context)
        let result = try await JobRetry(queue: queue, lookup: lookup, admission: admission).retry(id, by: key)
        guard let created = try await queue.get(result.id) else { throw APIError.notFound }
        var response = Response(
            status: .accepted, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: JobDocument.accepted(result.id, state: created.state, createdAt: created.createdAt))))
        if !result.created { response.headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
        return response
    }

    /// The body of `POST /v1/jobs/retry`: which of the tenant's jobs to retry.
    struct RetryFilter: Decodable, RefusesUnknownFields {
        static let fields: Set<String> = ["lane", "state", "before", "limit"]
        /// Only this lane's jobs; every lane when absent.
        var lane: String?
        /// `dead` (the default) or `failed`.
        var state: String?
        /// Only jobs created before this time (Unix seconds).
        var before: Double?
        /// The most jobs retried, 1 to 1,000 (default 100).
        var limit: Int?

        init(from decoder: any Swift.Decoder) throws {
            try Self.refuseUnknownFields(in: decoder)
            let container = try decoder.container(keyedBy: AnyField.self)
            lane = try container.decodeIfPresent(String.self, forKey: AnyField(stringValue: "lane"))
            state = try container.decodeIfPresent(String.self, forKey: AnyField(stringValue: "state"))
            before = try container.decodeIfPresent(Double.self, forKey: AnyField(stringValue: "before"))
            limit = try container.decodeIfPresent(Int.self, forKey: AnyField(stringValue: "limit"))
        }
    }

    /// `POST /v1/jobs/retry`: each of the key's tenant's jobs the filter selects (newest first;
    /// one already retried is left out) retried as by `retry`, all admitted at once. 202 with
    /// `{"object": "list", "count", "data": [{"id", "retry_of", "created"}…]}`. The listing
    /// examines at most 50 pages of 100 jobs, so a call is bounded whatever the queue holds.
    @Sendable func retryMany(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.submit)
        let filter = try await APIJSON.Decoder().decode(RetryFilter.self, from: request, context: context)
        let stateName = filter.state ?? JobState.dead.rawValue
        guard let state = JobState(rawValue: stateName), JobRetry.retryableStates.contains(state) else {
            throw APIError.invalid("'state' must be dead or failed", param: "state")
        }
        let limit = filter.limit ?? 100
        guard (1...JobRetry.maxSelected).contains(limit) else { throw APIError.invalid("'limit' must be a whole number from 1 to 1000", param: "limit") }
        let before = try filter.before.map { seconds in
            guard let millis = Bounded.unixMillis(seconds: seconds) else {
                throw APIError.invalid("'before' must be a time in Unix seconds, from 1970 to 9999", param: "before")
            }
            return UnixMillis(millis)
        }
        let retries = JobRetry(queue: queue, lookup: lookup, admission: admission)
        let chosen = try await retries.select(tenant: key.tenant, lane: filter.lane, state: state, before: before, limit: limit)
        struct Retried: Encodable {
            let id: String
            let retryOf: String
            let created: Bool
            enum CodingKeys: String, CodingKey { case id, retryOf = "retry_of", created }
        }
        struct Answer: Encodable {
            var object = "list"
            let count: Int
            let data: [Retried]
        }
        let results = try await retries.retry(chosen, by: key)
        let retried = zip(chosen, results).map { Retried(id: $1.id.rawValue, retryOf: $0.id.rawValue, created: $1.created) }
        let body = try JSONObjectWriter.encode(Answer(count: retried.count, data: retried))
        return Response(status: .accepted, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    private static func jobID(_ context: SluiceRequestContext) throws -> JobID {
        guard let raw = context.parameters.get("id"), let id = JobID(raw) else { throw APIError.notFound }
        return id
    }
}

extension HTTPField.Name {
    /// W3C Trace Context's header: the client's trace a submit continues.
    static let traceparent = HTTPField.Name("traceparent")!
}
