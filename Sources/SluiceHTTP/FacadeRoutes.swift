import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceQueue

/// The synchronous facade: `POST /v1/chat/completions`, `/v1/embeddings` (OpenAI's shapes) and
/// `/v1/messages` (Anthropic's). Each request becomes a job of top priority, and the answer is
/// the job's result once it has run, so an app can point its SDK at Sluice and let the queue
/// absorb the provider's 429s.
///
/// - The request's `model` names a route, a `provider/model` lane, or a model a provider lists
///   (`ModelDirectory`). Either way the provider
///   gets the lane's model, and a provider of the other API is spoken to in its own (the worker
///   translates chat completions ⇄ messages both ways).
/// - The wait is bounded: `facadeWait` by default, or `X-Sluice-Wait` seconds (up to
///   `facadeMaxWait`). Past it: 504 `timeout`, with the job's id in the body (`job_id`) and in
///   `X-Sluice-Job`, to poll later. With an `Idempotency-Key`, a retry of the same request waits
///   on the same job.
/// - `stream: true` is refused with a 400: a queued call cannot stream.
/// - Served inline when it can (`inline`, in `sluice up`): the job is created leased to this
///   process and the provider called from here, under the same limits and with the same record
///   as a worker's call; a 429 or a retryable failure puts it back in its lane for the workers,
///   and the request waits on it as for any queued call.
extension FacadeController {
    enum FacadeEndpoint: Sendable {
        case chat, embeddings, messages

        /// The API its bodies are written in (the job's `format`).
        var format: ProviderKind { self == .messages ? .anthropic : .openai }
        var path: String {
            switch self {
            case .chat: "/v1/chat/completions"
            case .embeddings: "/v1/embeddings"
            case .messages: "/v1/messages"
            }
        }
    }

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.post("chat/completions") { request, context in try await self.facade(.chat, request, context) }
        group.post("embeddings") { request, context in try await self.facade(.embeddings, request, context) }
        group.post("messages") { request, context in try await self.facade(.messages, request, context) }
    }

    func facade(_ endpoint: FacadeEndpoint, _ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.submit)
        let wait = try facadeWait(request)
        let body = Array(buffer: try await request.body.collect(upTo: context.maxUploadSize))
        guard let call = try? JSONDecoder().decode(FacadeCall.self, from: Data(body)) else {
            throw APIError.invalid("the body must be a JSON object")
        }
        if call.stream == true {
            throw APIError.invalid(
                "stream: true is not supported: Sluice queues the call and answers when it is done; send stream: false (or use POST /v1/jobs)",
                param: "stream")
        }
        guard let model = call.model, !model.isEmpty else {
            throw APIError.invalid("'model' is required: a route, or provider/model", param: "model")
        }
        guard let resolution = admission.directory.resolve(model) else {
            throw APIError(.notFound, type: "model_not_found", message: ModelDirectory.unknown(model), param: "model")
        }
        if endpoint == .embeddings, resolution.kind == ProviderKind.anthropic.rawValue {
            throw APIError.invalid("model '\(model)' is served by an Anthropic provider, which has no embeddings", param: "model")
        }
        let idempotencyKey = request.headers[HTTPField.Name("Idempotency-Key")!]
        var spec = JobSpec(
            lane: resolution.lane, tenant: key.tenant, priority: JobSpec.priorityRange.upperBound, payload: body,
            idempotencyKey: idempotencyKey.map { "facade:" + $0 },
            envelope: JobEnvelope(
                endpoint: endpoint == .embeddings ? .embeddings : nil, format: endpoint.format, route: resolution.route,
                cache: try cacheTicket(request, key: key, lane: resolution.lane, route: resolution.route, body: body)))
        spec.why = resolution.why
        try await admission.checkJobs([spec], key: key, ownPriority: true)
        // The wait slot is taken before the job is queued: a key at its cap of parked waits gets
        // its 429 with nothing queued (an SDK retrying it must not pile up top-priority jobs).
        let outcome = try await admission.parked(key) { () async throws -> Outcome in
            try await admission.admit(key, count: 1)
            // The budgets' reservation is given back when no new job came of it.
            var spec = spec
            let unreserve = try await admission.reserveBudgets(&spec, key: key)
            let deadline = ContinuousClock.now + wait
            let id: JobID
            let start: InlineStart?
            do { start = try await inline?.start(spec, submitter: key.id) } catch {
                await unreserve?()
                throw error
            }
            switch start {
            case .run(let call)?:
                if let answer = await Self.run(call, within: wait) { return .answered(call.id, answer) }
                // The job failed for good (read back at once), or is back in its lane for the workers.
                return .job(try await waiter.wait(for: call.id, timeout: max(.zero, deadline - ContinuousClock.now)))
            case .queued(let queued)?: id = queued
            case nil:
                let result: EnqueueResult
                do { result = try await queue.enqueue(spec, submitter: key.id) } catch {
                    await unreserve?()
                    throw error
                }
                if !result.created { await unreserve?() }
                id = result.id
            }
            return .job(try await waiter.wait(for: id, timeout: wait))
        }
        switch outcome {
        case .answered(let id, let answer):
            return Response(
                status: .ok, headers: [.contentType: "application/json", HTTPField.Name("X-Sluice-Job")!: id.rawValue],
                body: .init(byteBuffer: ByteBuffer(bytes: answer)))
        case .job(let job):
            guard let job else { throw APIError.notFound }
            return try facadeAnswer(job, waited: wait)
        }
    }

    /// How a facade call ended: answered by a call served here (its job recorded succeeded with
    /// that answer), or the job as it was when the wait ended.
    enum Outcome: Sendable {
        case answered(JobID, [UInt8])
        case job(Job?)
    }

    /// Runs an inline call (`InlineCaller`), for at most `wait`: past it the call is cancelled,
    /// which gives its job back to its lane without using up its attempt, and a worker runs it
    /// (the caller answers 504 with the job's id, as for a queued call not finished in time).
    /// Returns the answer when the job succeeded.
    static func run(_ call: any InlineCall, within wait: Duration) async -> [UInt8]? {
        await withTaskGroup(of: [UInt8]?.self) { group in
            group.addTask { await call.run() }
            group.addTask {
                try? await Task.sleep(for: wait)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// The call's response cache ticket, as a queued job's (`ResponseCacheSettings.policy`): the
    /// config's defaults, the route's, the key's, and the call's own `X-Sluice-Cache` header
    /// (a job's `cache` value: `false`, `true` or `{"ttl": "1h", "all": true}`), which wins.
    private func cacheTicket(_ request: Request, key: APIKey, lane: String, route: String?, body: [UInt8]) throws -> ResponseCacheTicket? {
        var asked: JSONValue?
        if let text = request.headers[HTTPField.Name("X-Sluice-Cache")!] {
            guard text.utf8.count <= 256, let value = try? JSONValue(parsing: text) else {
                throw APIError.invalid("X-Sluice-Cache must be false, true or an object such as {\"ttl\": \"1h\"}", param: "X-Sluice-Cache")
            }
            asked = value
        }
        let settings = admission.cache(for: key)
        let policy: ResponseCachePolicy?
        do { policy = try settings.policy(for: asked, route: route) } catch {
            throw APIError.invalid("X-Sluice-Cache: " + error.message, param: "X-Sluice-Cache")
        }
        guard let policy else { return nil }
        return ResponseCacheKey(lane: lane, scope: settings.scope(tenant: key.tenant), body: body, policy: policy)
            .map { ResponseCacheTicket(key: $0, ttl: policy.ttl) }
    }

    /// How long to wait: `X-Sluice-Wait` seconds, or the default.
    private func facadeWait(_ request: Request) throws -> Duration {
        guard let text = request.headers[HTTPField.Name("X-Sluice-Wait")!] else { return facadeWait }
        guard let seconds = Double(text), let wait = Bounded.duration(seconds: seconds, in: .milliseconds(1)...facadeMaxWait) else {
            throw APIError.invalid(
                "X-Sluice-Wait must be a number of seconds above 0 and at most \(facadeMaxWait.components.seconds)",
                param: "X-Sluice-Wait")
        }
        return wait
    }

    /// The job's result as the provider's answer; an error that says what became of the job
    /// otherwise.
    private func facadeAnswer(_ job: Job, waited: Duration) throws -> Response {
        let jobHeader = HTTPField.Name("X-Sluice-Job")!
        func failure(_ status: HTTPResponse.Status, _ type: String, _ message: String) -> APIError {
            var error = APIError(status, type: type, message: message)
            error.jobID = job.id.rawValue
            error.headers[jobHeader] = job.id.rawValue
            return error
        }
        switch job.state {
        case .succeeded:
            return Response(
                status: .ok, headers: [.contentType: "application/json", jobHeader: job.id.rawValue],
                body: .init(byteBuffer: ByteBuffer(bytes: job.result ?? [])))
        case .failed:
            throw failure(.badRequest, "provider_error", "the provider refused the request: \(job.error ?? "no detail")")
        case .dead:
            throw failure(.badGateway, "provider_error", "the provider failed on every attempt: \(job.error ?? "no detail")")
        case .cancelled:
            throw failure(.conflict, "cancelled", "job \(job.id) was cancelled")
        case .expired:
            throw failure(.gatewayTimeout, "expired", "job \(job.id) passed its deadline before it ran")
        default:
            let seconds = Bounded.seconds(waited)
            throw failure(
                .gatewayTimeout, "timeout",
                "job \(job.id) did not finish within \(seconds) s; it is still \(job.state.rawValue): poll GET /v1/jobs/\(job.id)")
        }
    }
}

/// What the facade reads of a call's body (the rest goes to the provider as it is): the model
/// that names the lane, and `stream`, which a queued call cannot honour. Anything else, of any
/// type, is the provider's business.
struct FacadeCall: Decodable {
    var model: String?
    var stream: Bool?

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        model = try? container.decodeIfPresent(String.self, forKey: .model)
        stream = try? container.decodeIfPresent(Bool.self, forKey: .stream)
    }

    enum CodingKeys: String, CodingKey { case model, stream }
}
