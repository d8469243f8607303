import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceQueue

/// Pipeline runs: `POST /v1/jobs` with `"pipeline"` (dispatched here by `JobsController`),
/// `GET /v1/runs/{id}[?wait=S]`, `GET /v1/runs`, `POST /v1/runs/{id}/cancel`.
///
/// - Submit (scope submit): `{"pipeline": NAME, "input": …, "callback_url"?, "metadata"?,
///   "idempotency_key"?}` (or the `Idempotency-Key` header), parsed strictly (an unknown field is
///   a 400 naming it). The pipeline is looked up (the configuration's, or the tenant's stored
///   ones) and admitted as a submit is: the key's lanes are checked against every step's target,
///   and its priorities against `max_priority`; the key's rate counts one submit. The definition
///   is snapshotted into the run: changing the pipeline later does not change a run under way.
///   202 `{id, object: "run", status, created_at, links}`.
/// - `GET /v1/runs/{id}` (scope read): the run (`PipelineRun.resource`); `wait` long-polls up to
///   60 s until it ends, woken by its end (no polling). Another tenant's run is 404 unless the
///   key is admin.
/// - `GET /v1/runs?limit=&cursor=` (scope read): the tenant's runs, newest first, without their
///   steps' results (a page of large fan-outs would read every item's answer): get one for those.
///   A page ends early past `JobQueue.runPageBytes` of runs (each holds its input).
/// - `POST /v1/runs/{id}/cancel` (scope submit): the run ends `cancelled` at once; its steps
///   not yet finished are cancelled, and no more are created. 409 if it had already ended.
struct RunsController: Sendable {
    let queue: JobQueue
    let waiter: JobWaiter
    let admission: KeyAdmission
    let callbacks: Callbacks
    /// The pipeline a tenant's submit names: the tenant's stored one, or the configuration's.
    let pipelines: @Sendable (_ name: String, _ tenant: String) async throws -> Pipeline?

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.get("runs", use: list)
        group.get("runs/:id", use: get)
        group.post("runs/:id/cancel", use: cancel)
    }

    /// Whether a `POST /v1/jobs` body asks for a run: an object with a `pipeline` member. Only
    /// asked once the job parser refused the body (a job has no such field), so ordinary jobs
    /// never pay for it.
    static func isRunRequest(_ body: [UInt8]) -> Bool {
        guard body.firstRange(of: Array(#""pipeline""#.utf8)) != nil, case .object(let object)? = try? JSONValue(parsing: body) else {
            return false
        }
        return object["pipeline"] != nil
    }

    /// A run's submit body, parsed strictly.
    struct RunRequest {
        var pipeline: String
        var input: JSONValue
        var callbackURL: String?
        var metadata: JSONValue?
        var idempotencyKey: String?

        static let fields: Set<String> = ["pipeline", "input", "callback_url", "metadata", "idempotency_key"]

        init(_ body: [UInt8]) throws(APIError) {
            guard case .object(let object)? = try? JSONValue(parsing: body) else { throw .invalid("the body must be a JSON object") }
            if let unknown = object.keys.first(where: { !Self.fields.contains($0) }) {
                throw .invalid("unknown field '\(unknown)' (a pipeline run takes \(Self.fields.sorted().joined(separator: ", ")))", param: unknown)
            }
            guard case .string(let name)? = object["pipeline"], !name.isEmpty else {
                throw .invalid("'pipeline' must be the name of a pipeline", param: "pipeline")
            }
            pipeline = name
            input = object["input"] ?? .object([:])
            switch object["callback_url"] {
            case nil, .null?: callbackURL = nil
            case .string(let text)?:
                guard let url = URL(string: text), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                    throw .invalid("'callback_url' must be an http(s) URL", param: "callback_url")
                }
                callbackURL = text
            default: throw .invalid("'callback_url' must be an http(s) URL", param: "callback_url")
            }
            switch object["metadata"] {
            case nil, .null?: metadata = nil
            case .object?: metadata = object["metadata"]
            default: throw .invalid("'metadata' must be a JSON object", param: "metadata")
            }
            switch object["idempotency_key"] {
            case nil, .null?: idempotencyKey = nil
            case .string(let text)? where !text.isEmpty && text.utf8.count <= 255: idempotencyKey = text
            default: throw .invalid("'idempotency_key' must be 1-255 characters", param: "idempotency_key")
            }
        }
    }

    /// `POST /v1/jobs` with `"pipeline"`: creates a run.
    func submit(_ body: [UInt8], idempotencyKey header: String?, key: APIKey) async throws -> Response {
        let asked = try RunRequest(body)
        guard let pipeline = try await pipelines(asked.pipeline, key.tenant) else {
            throw APIError(.notFound, type: "not_found", message: "no pipeline named '\(Self.printable(asked.pipeline))'", param: "pipeline")
        }
        if let key = header, key.isEmpty || key.utf8.count > 255 {
            throw APIError.invalid("the Idempotency-Key header must be 1-255 characters", param: "idempotency_key")
        }
        try await checkSteps(pipeline, key: key)
        let callback = try await callbacks.check(batchCallback: asked.callbackURL, key: key)
        try await admission.admit(key, count: 1)
        let run = JobQueue.NewRun(
            pipeline: pipeline.name, definition: pipeline.jsonBytes, input: asked.input.jsonBytes, metadata: asked.metadata?.jsonBytes,
            callbackURL: callback, idempotencyKey: header ?? asked.idempotencyKey)
        let (id, created) = try await queue.createRun(run, tenant: key.tenant, submitter: key.id)
        var status = PipelineRun.Status.queued
        var createdAt = UnixMillis.current()
        if !created, let stored = try await queue.run(id) {
            status = stored.status
            createdAt = stored.createdAt
        }
        var writer = JSONObjectWriter(capacity: 256)
        writer.int("created_at", JobResource.seconds(createdAt))
        writer.string("id", id)
        writer.object("links") { links in
            links.string("cancel", "/v1/runs/\(id)/cancel")
            links.string("self", "/v1/runs/\(id)")
        }
        writer.string("object", "run")
        writer.string("status", status.rawValue)
        var response = Response(
            status: .accepted, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: writer.finished())))
        if !created { response.headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
        return response
    }

    /// Admits every step as a job would be: its target must resolve to a lane a configured
    /// provider serves, the key must be allowed that lane (every target of a route), and the
    /// step's priority must be within the key's `max_priority`.
    func checkSteps(_ pipeline: Pipeline, key: APIKey) async throws {
        try await admission.checkSteps(
            pipeline, key: key,
            unresolved: { index in
                let step = pipeline.steps[index]
                guard case .model(let name) = step.target else { return APIError.invalid("step '\(step.name)': no lane", param: "pipeline") }
                return APIError.invalid("step '\(step.name)': " + ModelDirectory.unknown(name), param: "pipeline")
            },
            name: { index, error in error.message = "step '\(pipeline.steps[index].name)': " + error.message })
    }

    @Sendable func get(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.read)
        let id = try Self.runID(context)
        guard let first = try await queue.run(id) else { throw Self.notFound }
        guard first.tenant == key.tenant || key.scopes.contains(.admin) else { throw Self.notFound }
        var run = first
        if let waitText = request.uri.queryParameters["wait"], !first.status.isTerminal {
            guard let seconds = Double(waitText), let timeout = Bounded.duration(seconds: seconds, in: .zero...(.seconds(60))) else {
                throw APIError.invalid("'wait' must be a number of seconds from 0 to 60", param: "wait")
            }
            let queue = self.queue
            run = try await admission.parked(key) {
                try await waiter.wait(subject: id, timeout: timeout, read: { try await queue.run(id) }, isDone: { $0.status.isTerminal })
            } ?? first
        } else if let waitText = request.uri.queryParameters["wait"] {
            guard let seconds = Double(waitText), Bounded.duration(seconds: seconds, in: .zero...(.seconds(60))) != nil else {
                throw APIError.invalid("'wait' must be a number of seconds from 0 to 60", param: "wait")
            }
        }
        return Self.json(try await queue.runResource(run))
    }

    @Sendable func list(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.read)
        let query = request.uri.queryParameters
        let known: Set<String> = ["limit", "cursor"]
        if let unknown = query.first(where: { !known.contains(String($0.key)) }) {
            throw APIError.invalid("unknown query parameter '\(unknown.key)'", param: String(unknown.key))
        }
        let limit = try Paging.limit(query["limit"])
        let cursor = try Paging.cursor(query["cursor"], isCursor: PipelineRun.isID)
        let page = try await queue.listRuns(tenant: key.tenant, limit: limit, cursor: cursor)
        var bytes = Array(#"{"data":["#.utf8)
        for (index, run) in page.runs.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            bytes += try await queue.runResource(run, withResults: false)
        }
        bytes += Array(#"],"has_more":\#(page.nextCursor != nil),"next_cursor":"#.utf8)
        if let next = page.nextCursor { JSONObjectWriter.appendString(next, to: &bytes) } else { bytes += Array("null".utf8) }
        bytes += Array(#","object":"list"}"#.utf8)
        return Self.json(bytes)
    }

    @Sendable func cancel(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.submit)
        let id = try Self.runID(context)
        guard let run = try await queue.run(id), run.tenant == key.tenant || key.scopes.contains(.admin) else { throw Self.notFound }
        switch try await queue.cancelRun(id) {
        case .notFound: throw Self.notFound
        case .alreadyFinished(let status):
            throw APIError(.conflict, type: "conflict", message: "the run already ended: \(status.rawValue)")
        case .cancelled:
            guard let cancelled = try await queue.run(id) else { throw Self.notFound }
            return Self.json(try await queue.runResource(cancelled))
        }
    }

    /// A client's name as it may be echoed: control characters replaced, at most 80 characters.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.prefix(80).map { $0.properties.generalCategory == .control ? "?" : $0 }))
    }

    static let notFound = APIError(.notFound, type: "not_found", message: "no such run")

    static func json(_ bytes: [UInt8]) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    private static func runID(_ context: SluiceRequestContext) throws -> String {
        guard let raw = context.parameters.get("id"), PipelineRun.isID(raw) else { throw notFound }
        return raw
    }
}
