import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceQueue
import SluiceStore

/// How batches are run.
public struct BatchSettings: Sendable, Hashable {
    /// The most requests in one batch.
    public var maxRequests = 50_000
    /// The priority of batch jobs (below interactive work).
    public var priority = -50
    /// Attempts per request.
    public var maxAttempts = 3
    /// How often the service looks for batches whose requests have all finished.
    public var pollInterval: Duration = .milliseconds(250)

    public init() {}

    /// From the configuration's `batches` and `queue` sections.
    public init(_ configuration: SluiceConfiguration) {
        maxRequests = configuration.batches.maxRequests
        priority = configuration.batches.priority
        maxAttempts = configuration.queue.maxAttempts
    }
}

/// Why a batch request was refused: a 4xx for the client.
public struct BatchError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case invalid, notFound, conflict }
    public var kind: Kind
    public var message: String
    public var param: String?

    public init(_ kind: Kind, _ message: String, param: String? = nil) {
        self.kind = kind
        self.message = message
        self.param = param
    }

    public var description: String { message }
}

/// The batch APIs' engine, shared by OpenAI's `/v1/batches` and Anthropic's
/// `/v1/messages/batches`.
///
/// - **Submitting.** Each request is checked first (OpenAI: every line of the input file, and a
///   bad line fails the batch with `errors` naming it; Anthropic: the request is refused). A
///   valid batch is recorded as `validating`, each request becomes a job (priority
///   `settings.priority`, deadline the end of the completion window, idempotency key
///   `batch:<id>:<line>`) on the lane that serves its `model` (`ModelDirectory`), and the batch
///   is `in_progress`. A crash in between is resumed by `run()`: the idempotency keys make the
///   second submission create nothing twice.
/// - **Counting.** The archiver counts each job in its batch as it archives it.
/// - **Ending.** `run()` finalizes each batch whose requests have all ended: it builds the
///   output (and error) file from the archive, and the batch is `completed` (`expired` if some
///   requests passed the window, `cancelled` after a cancel). A batch with a `callback_url`
///   then gets a webhook: `batch.completed` (or `batch.expired`, `batch.cancelled`), with the
///   batch object as `data`.
public final class BatchService: Service, Sendable {
    public let queue: JobQueue
    public let store: BatchStore
    public let archive: ArchiveStore
    /// Where the batch's webhook is queued when it ends (the webhook service sends it).
    public let webhooks: any WebhookOutbox
    public let directory: ModelDirectory
    public let settings: BatchSettings
    let logger: Logger

    public init(
        queue: JobQueue, database: SluiceDatabase, webhooks: any WebhookOutbox, directory: ModelDirectory, settings: BatchSettings = BatchSettings(),
        logger: Logger
    ) {
        self.queue = queue
        store = BatchStore(database: database)
        archive = ArchiveStore(database: database)
        self.webhooks = webhooks
        self.directory = directory
        self.settings = settings
        self.logger = logger
    }

    /// A new id: `prefix` and 24 random letters and digits.
    public static func newID(_ prefix: String) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var random = SystemRandomNumberGenerator()
        return prefix + String((0..<24).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
    }

    // MARK: - Requests

    /// One request of a batch, checked.
    struct Request {
        var line: Int
        var customID: String
        var body: [UInt8]
        var lane: String
        var route: String?
        /// Why this lane, when a route chose it (`JobSpec.why`).
        var why: String? = nil
    }

    /// One problem with one line of an input file, as OpenAI reports it.
    struct LineError {
        var code: String
        var message: String
        var param: String?
        var line: Int?

        var document: [String: Any] {
            ["code": code, "message": message, "param": param ?? NSNull(), "line": line ?? NSNull()]
        }
    }

    static let openAIEndpoints = ["/v1/chat/completions", "/v1/embeddings"]

    /// Checks every line of an OpenAI batch input file.
    func checkOpenAI(_ content: [UInt8], endpoint: String) -> (requests: [Request], errors: [LineError]) {
        var requests: [Request] = []
        var errors: [LineError] = []
        var seen: Set<String> = []
        var number = 0
        for raw in content.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            let line = raw.last == UInt8(ascii: "\r") ? raw.dropLast() : raw
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            func fail(_ code: String, _ message: String, param: String? = nil) {
                if errors.count < 100 { errors.append(LineError(code: code, message: message, param: param, line: number)) }
            }
            guard let object = OpenAILine(Array(line)) else {
                fail("invalid_json_line", "line \(number) is not a JSON object")
                continue
            }
            guard let customID = object.customID, !customID.isEmpty else {
                fail("missing_required_parameter", "line \(number) has no custom_id (a non-empty string)", param: "custom_id")
                continue
            }
            guard seen.insert(customID).inserted else {
                fail("duplicate_custom_id", "line \(number): custom_id '\(customID)' is used by an earlier line", param: "custom_id")
                continue
            }
            guard object.method?.uppercased() == "POST" else {
                fail("invalid_method", "line \(number): method must be POST", param: "method")
                continue
            }
            guard object.url == endpoint else {
                fail(
                    "mismatched_endpoint", "line \(number): url must be the batch's endpoint \(endpoint), not \(object.urlText ?? "missing")",
                    param: "url")
                continue
            }
            guard let body = object.body else {
                fail("missing_required_parameter", "line \(number) has no body (a JSON object)", param: "body")
                continue
            }
            if object.stream {
                fail("invalid_request", "line \(number): stream is not supported in a batch", param: "body.stream")
                continue
            }
            guard let model = object.model, !model.isEmpty else {
                fail("missing_required_parameter", "line \(number): body has no model", param: "body.model")
                continue
            }
            guard let resolution = directory.resolve(model) else {
                fail("model_not_found", "line \(number): " + ModelDirectory.unknown(model), param: "body.model")
                continue
            }
            if endpoint == "/v1/embeddings" && resolution.kind == ProviderKind.anthropic.rawValue {
                fail("model_not_found", "line \(number): model '\(model)' is served by an Anthropic provider, which has no embeddings", param: "body.model")
                continue
            }
            requests.append(Request(line: number, customID: customID, body: body, lane: resolution.lane, route: resolution.route, why: resolution.why))
        }
        if requests.isEmpty && errors.isEmpty {
            errors.append(LineError(code: "empty_file", message: "the input file has no requests", param: nil, line: nil))
        }
        if requests.count + errors.count > settings.maxRequests {
            errors.insert(
                LineError(code: "too_many_requests", message: "a batch holds at most \(settings.maxRequests) requests", param: nil, line: nil),
                at: 0)
        }
        return (requests, errors)
    }

    /// Checks an Anthropic Message Batch's body (`{"requests": [{custom_id, params}…]}`) and
    /// its requests; throws at the first bad one. Read with the strict scanner: each request's
    /// `params` is queued as the bytes the client wrote.
    func checkAnthropic(_ body: [UInt8]) throws(BatchError) -> [Request] {
        let result: Result<[Request], BatchError> = body.withUnsafeBufferPointer { bytes in
            do throws(BatchError) { return .success(try checkAnthropic(bytes)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    private func checkAnthropic(_ bytes: UnsafeBufferPointer<UInt8>) throws(BatchError) -> [Request] {
        func string(_ value: JSONScanner.Value) -> String? { value.kind == .string ? JSONScanner.decodeString(bytes, value.range) : nil }
        /// The members of the object at `range`, by name (the last of a repeated name counts).
        func members(_ range: Range<Int>) -> [String: JSONScanner.Value]? {
            var found: [String: JSONScanner.Value] = [:]
            var scanner = JSONScanner(bytes, range: range)
            let read: ()? = try? scanner.objectMembers { (key, value) throws(Never) in found[JSONScanner.decodeString(bytes, key)] = value }
            return read == nil ? nil : found
        }
        guard let object = members(0..<bytes.count) else { throw BatchError(.invalid, "the body must be a JSON object") }
        guard let requestsValue = object["requests"], requestsValue.kind == .array,
            let list = { () -> [JSONScanner.Value]? in
                var scanner = JSONScanner(bytes, range: requestsValue.range)
                return try? scanner.arrayElements()
            }()
        else {
            throw BatchError(.invalid, "requests: is required (a list of {custom_id, params})", param: "requests")
        }
        guard !list.isEmpty else { throw BatchError(.invalid, "requests: must hold at least one request", param: "requests") }
        guard list.count <= settings.maxRequests else {
            throw BatchError(.invalid, "requests: a batch holds at most \(settings.maxRequests) requests", param: "requests")
        }
        var requests: [Request] = []
        var seen: Set<String> = []
        for (index, item) in list.enumerated() {
            let at = "requests[\(index)]"
            guard item.kind == .object, let object = members(item.range) else {
                throw BatchError(.invalid, "\(at): must be an object", param: at)
            }
            guard let customID = object["custom_id"].flatMap(string), (1...64).contains(customID.count),
                customID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
            else {
                throw BatchError(.invalid, "\(at).custom_id: must be 1-64 letters, digits, _ or -", param: "\(at).custom_id")
            }
            guard seen.insert(customID).inserted else {
                throw BatchError(.invalid, "\(at).custom_id: '\(customID)' is used by an earlier request", param: "\(at).custom_id")
            }
            guard let paramsValue = object["params"], paramsValue.kind == .object, let params = members(paramsValue.range) else {
                throw BatchError(.invalid, "\(at).params: must be an object (a Messages request)", param: "\(at).params")
            }
            guard let model = params["model"].flatMap(string), !model.isEmpty else {
                throw BatchError(.invalid, "\(at).params.model: is required", param: "\(at).params.model")
            }
            guard let maxTokens = params["max_tokens"], maxTokens.kind == .number, JSONScanner.wholeNumber(bytes, maxTokens.range) != nil else {
                throw BatchError(.invalid, "\(at).params.max_tokens: is required (a whole number)", param: "\(at).params.max_tokens")
            }
            guard params["messages"]?.kind == .array else {
                throw BatchError(.invalid, "\(at).params.messages: is required (a list)", param: "\(at).params.messages")
            }
            if let stream = params["stream"], stream.kind == .bool, bytes[stream.range.lowerBound] == UInt8(ascii: "t") {
                throw BatchError(.invalid, "\(at).params.stream: streaming is not supported in a batch", param: "\(at).params.stream")
            }
            guard let resolution = directory.resolve(model) else {
                throw BatchError(.invalid, "\(at).params.model: " + ModelDirectory.unknown(model), param: "\(at).params.model")
            }
            requests.append(
                Request(line: index + 1, customID: customID, body: Array(bytes[paramsValue.range]), lane: resolution.lane, route: resolution.route, why: resolution.why))
        }
        return requests
    }

    // MARK: - Submitting

    /// Creates an OpenAI batch from an uploaded input file. A file with bad lines makes a
    /// `failed` batch whose `errors` name them (as OpenAI does); the call itself succeeds.
    ///
    /// `admission` is asked before anything is recorded, with the lanes the requests go to and
    /// their count: the caller applies the key's lanes, rate and cap as it does to a submit, and
    /// throws to refuse the whole batch.
    public func submitOpenAI(
        key: APIKey, inputFileID: String, endpoint: String, completionWindow: String, metadata: [String: String]?, callbackURL: String?,
        admission: Admission = { _, _ in }, budgeting: Budgeting = { _ in nil }
    ) async throws -> BatchRecord {
        guard Self.openAIEndpoints.contains(endpoint) else {
            throw BatchError(.invalid, "endpoint must be one of \(Self.openAIEndpoints.joined(separator: ", "))", param: "endpoint")
        }
        guard let window = Duration(parsing: completionWindow), window >= .seconds(1), window <= Self.maxCompletionWindow else {
            throw BatchError(.invalid, "completion_window must be a duration such as 24h, at most 30d", param: "completion_window")
        }
        guard let file = try await store.file(inputFileID), file.tenant == key.tenant else {
            throw BatchError(.notFound, "no such file: \(inputFileID)", param: "input_file_id")
        }
        guard file.purpose == "batch" else {
            throw BatchError(.invalid, "the input file's purpose must be 'batch', not '\(file.purpose)'", param: "input_file_id")
        }
        let content = try await store.content(inputFileID) ?? []
        let now = UnixMillis.current()
        var batch = BatchRecord(
            id: Self.newID("batch_"), api: ProviderKind.openai.rawValue, tenant: key.tenant, keyID: key.id, endpoint: endpoint, status: "validating",
            completionWindow: completionWindow, createdAt: now)
        batch.inputFileID = inputFileID
        batch.expiresAt = now + window
        batch.callbackURL = callbackURL
        if let metadata, let text = try? JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys, .withoutEscapingSlashes]) {
            batch.metadata = String(decoding: text, as: UTF8.self)
        }
        let (requests, errors) = checkOpenAI(content, endpoint: endpoint)
        if !errors.isEmpty {
            batch.status = "failed"
            batch.failedAt = now
            let text = try JSONSerialization.data(withJSONObject: ["object": "list", "data": errors.map(\.document)], options: [.sortedKeys, .withoutEscapingSlashes])
            batch.errors = String(decoding: text, as: UTF8.self)
            try await store.create(batch)
            await announceEnd(batch)
            return batch
        }
        try await admission(lanes(of: requests), requests.count)
        let hold = try await budgeting(budgetSpecs(requests, tenant: key.tenant))
        batch.total = requests.count
        do { try await store.create(batch) } catch {
            await hold?.release(Array(requests.indices))
            throw error
        }
        return try await start(batch, requests, budget: hold)
    }

    /// The lanes a batch's requests may run on: their own, and every target of a route they
    /// name (a routed job may move to any of them) and its canary.
    func lanes(of requests: [Request]) -> Set<String> {
        var lanes = Set<String>()
        for request in requests {
            lanes.insert(request.lane)
            if let route = request.route.flatMap({ directory.routes[$0] }) {
                lanes.formUnion(route.targets.map(\.lane))
                if let canary = route.canary { lanes.insert(canary.lane) }  // a pick may go there
            }
        }
        return lanes
    }

    /// Applies a key's admission to a batch's lanes and count of requests; throws to refuse it.
    public typealias Admission = @Sendable (_ lanes: Set<String>, _ count: Int) async throws -> Void

    /// What a batch's budget reservation holds: the key's budget for its jobs' envelopes
    /// (`JobEnvelope.budget`; nil: none), and what gives back the reservation of the jobs at
    /// the given indices (those not queued after all).
    public struct BudgetHold: Sendable {
        public var keyBudget: String?
        /// What each request's job reserved, and when (`JobEnvelope.reserved`), by request index
        /// (nil: none): the settlement gives back exactly that.
        public var reserved: [String?]
        public var release: @Sendable ([Int]) async -> Void
        public init(keyBudget: String?, reserved: [String?] = [], release: @escaping @Sendable ([Int]) async -> Void) {
            self.keyBudget = keyBudget
            self.reserved = reserved
            self.release = release
        }

        /// The `JobEnvelope.reserved` of request `index`'s job.
        func reserved(_ index: Int) -> String? { reserved.indices.contains(index) ? reserved[index] : nil }
    }

    /// Reserves the estimated cost of a batch's jobs in their budgets, the batch as a whole, or
    /// throws to refuse it (429 `budget_exceeded`); nil: no budget applies.
    public typealias Budgeting = @Sendable (_ specs: [JobSpec]) async throws -> BudgetHold?

    /// The jobs a batch's requests become, as far as their budgets go (lane, tenant, route,
    /// request): what `Budgeting` estimates.
    func budgetSpecs(_ requests: [Request], tenant: String) -> [JobSpec] {
        requests.map { request in
            var spec = JobSpec(lane: request.lane, tenant: tenant, payload: request.body)
            spec.route = request.route
            return spec
        }
    }

    /// The longest completion window a batch may ask for.
    public static let maxCompletionWindow: Duration = .seconds(30 * 86_400)

    /// Creates an Anthropic Message Batch from its requests (kept as a file, so that a crash
    /// before they are all queued can be resumed).
    public func submitAnthropic(
        key: APIKey, body: [UInt8], callbackURL: String?, admission: Admission = { _, _ in }, budgeting: Budgeting = { _ in nil }
    ) async throws -> BatchRecord {
        let requests = try checkAnthropic(body)
        try await admission(lanes(of: requests), requests.count)
        let hold = try await budgeting(budgetSpecs(requests, tenant: key.tenant))
        let now = UnixMillis.current()
        let input = StoredFile(
            id: Self.newID("file-"), tenant: key.tenant, keyID: key.id, purpose: "message_batch_input", filename: "requests.json",
            bytes: body.count, createdAt: now)
        var batch = BatchRecord(
            id: Self.newID("msgbatch_"), api: ProviderKind.anthropic.rawValue, tenant: key.tenant, keyID: key.id, endpoint: "/v1/messages",
            status: "validating", completionWindow: "24h", createdAt: now)
        batch.inputFileID = input.id
        batch.expiresAt = now + .seconds(86_400)
        batch.callbackURL = callbackURL
        batch.total = requests.count
        do {
            try await store.createFile(input, content: body)
            try await store.create(batch)
        } catch {
            await hold?.release(Array(requests.indices))
            throw error
        }
        return try await start(batch, requests, budget: hold)
    }

    /// Queues a validated batch's requests and marks it in progress. `budget`: the batch's
    /// reservation (its key's budget goes in each job's envelope; the reservation of a job not
    /// created, a replay, or of those left when queueing fails, is given back).
    func start(_ batch: BatchRecord, _ requests: [Request], budget: BudgetHold? = nil) async throws -> BatchRecord {
        var chunkStart = 0
        do {
            try await enqueueJobs(batch, requests, budget: budget, from: &chunkStart)
        } catch {
            await budget?.release(Array(chunkStart..<requests.count))
            throw error
        }
        try await store.transition(batch.id, to: "in_progress", from: ["validating"], stamp: "in_progress_at")
        return try await store.batch(batch.id) ?? batch
    }

    /// Queues the requests from `chunkStart` on, 5,000 at a time, moving `chunkStart` past each
    /// chunk queued.
    private func enqueueJobs(_ batch: BatchRecord, _ requests: [Request], budget: BudgetHold?, from chunkStart: inout Int) async throws {
        while chunkStart < requests.count {
            let chunk = requests[chunkStart..<min(chunkStart + 5_000, requests.count)]
            let format = batch.format
            let endpoint: JobEnvelope.Endpoint? = batch.endpoint == "/v1/embeddings" ? .embeddings : nil
            let specs = zip(chunk.indices, chunk).map { index, request -> JobSpec in
                var envelope = JobEnvelope(
                    batch: batch.id, customID: request.customID, endpoint: endpoint, format: format, route: request.route,
                    budget: budget?.keyBudget)
                envelope.reserved = budget?.reserved(index)
                var spec = JobSpec(
                    lane: request.lane, tenant: batch.tenant, priority: settings.priority, payload: request.body,
                    idempotencyKey: "batch:\(batch.id):\(request.line)", deadline: batch.expiresAt, maxAttempts: settings.maxAttempts,
                    envelope: envelope)
                spec.why = request.why
                // A client batch's job may go through its provider's own batch API (`client_batches`).
                spec.providerBatch = directory.providerBatch(
                    lane: request.lane, mode: nil, route: request.route, deadline: batch.expiresAt, clientBatch: true)
                return spec
            }
            let results = try await queue.enqueue(specs, submitter: batch.keyID)
            // A job queued before (a resumed batch's) holds its own reservation.
            let replayed = results.indices.filter { !results[$0].created }.map { chunkStart + $0 }
            if !replayed.isEmpty { await budget?.release(replayed) }
            try await store.addRequests(
                batch.id, zip(chunk, results).map { BatchRequest(line: $0.line, customID: $0.customID, jobID: $1.id.rawValue) })
            chunkStart += chunk.count
        }
    }

    // MARK: - Cancelling

    /// Cancels a batch: it is `cancelling` while its queued requests are cancelled and its
    /// running ones finish, then `cancelled` (with the results of those that finished).
    public func cancel(_ id: String, key: APIKey) async throws -> BatchRecord {
        guard let batch = try await store.batch(id), batch.tenant == key.tenant || key.scopes.contains(.admin) else {
            throw BatchError(.notFound, "no such batch: \(id)")
        }
        guard ["validating", "in_progress"].contains(batch.status) else {
            if batch.status == "cancelling" || batch.status == "cancelled" { return batch }
            throw BatchError(.conflict, "the batch is \(batch.status); only a batch in progress can be cancelled")
        }
        try await store.transition(id, to: "cancelling", from: ["validating", "in_progress"], stamp: "cancelling_at")
        let requests = try await store.requests(id)
        let archived = JobRecord.jobs(archived: try await archive.batchRecords(id))
        try await withThrowingTaskGroup(of: Void.self) { group in
            var running = 0
            for request in requests {
                guard let raw = request.jobID, archived[raw] == nil, let job = JobID(raw) else { continue }
                if running >= 256 {
                    try await group.next()
                    running -= 1
                }
                group.addTask { _ = try await self.queue.cancel(job) }
                running += 1
            }
            try await group.waitForAll()
        }
        return try await store.batch(id) ?? batch
    }

    // MARK: - Finalizing

    public func run() async throws {
        while !Task.isCancelled {
            do {
                for batch in try await store.openBatches() { try await advance(batch) }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("batches: advancing open batches failed", metadata: ["error": "\(error)"])
            }
            do { try await Task.sleep(for: settings.pollInterval) } catch { return }
            if Task.isShuttingDownGracefully { return }
        }
    }

    /// Moves one open batch on when it can: resumes an interrupted submission, or finalizes a
    /// batch whose requests have all ended.
    func advance(_ batch: BatchRecord) async throws {
        switch batch.status {
        case "validating" where UnixMillis.current().value - batch.createdAt.value > 30_000:
            // A submission interrupted after the batch was recorded: queue its requests again
            // (idempotently) from its input.
            guard let input = batch.inputFileID, let content = try await store.content(input) else { return }
            let requests: [Request]
            if batch.format == .anthropic {
                requests = (try? checkAnthropic(content)) ?? []
            } else {
                requests = checkOpenAI(content, endpoint: batch.endpoint).requests
            }
            logger.info("batches: resuming a submission", metadata: ["batch": "\(batch.id)", "requests": "\(requests.count)"])
            _ = try await start(batch, requests)
        case "in_progress", "cancelling", "finalizing":
            if batch.finished >= batch.total { try await finalize(batch) }
        default:
            break
        }
    }

    /// Builds a batch's results from the archive and ends it.
    func finalize(_ batch: BatchRecord) async throws {
        if batch.status != "finalizing" {
            try await store.transition(batch.id, to: "finalizing", from: [batch.status], stamp: "finalizing_at")
        }
        let requests = try await store.requests(batch.id)
        let archived = JobRecord.jobs(archived: try await archive.batchRecords(batch.id))
        var columns: [String: DatabaseValue] = [:]
        let now = UnixMillis.current()
        /// Stores one result file of the batch; its id goes in `column`.
        func keep(_ content: [UInt8], purpose: String, suffix: String, column: String) async throws {
            let file = StoredFile(
                id: Self.newID("file-"), tenant: batch.tenant, keyID: batch.keyID, purpose: purpose,
                filename: "\(batch.id)_\(suffix).jsonl", bytes: content.count, createdAt: now)
            try await store.createFile(file, content: content)
            columns[column] = file.id.databaseValue
        }
        if batch.format == .anthropic {
            try await keep(
                BatchOutput.anthropicResults(requests: requests, archived: archived), purpose: "message_batch_results", suffix: "results",
                column: "output_file_id")
        } else {
            let (output, errors) = BatchOutput.openAI(requests: requests, archived: archived)
            if !output.isEmpty { try await keep(output, purpose: "batch_output", suffix: "output", column: "output_file_id") }
            if !errors.isEmpty { try await keep(errors, purpose: "batch_output", suffix: "error", column: "error_file_id") }
        }
        let (status, stamp) =
            batch.status == "cancelling" || batch.cancellingAt != nil
            ? ("cancelled", "cancelled_at") : batch.expired > 0 ? ("expired", "expired_at") : ("completed", "completed_at")
        // The webhook is queued before the batch ends, so that a failure to queue it leaves the
        // batch finalizing, to be finalized (and announced) again; queueing it twice creates one
        // delivery (its id is the batch's).
        var ended = try await store.batch(batch.id) ?? batch
        ended.status = status
        ended.finalizingAt = ended.finalizingAt ?? now
        ended.outputFileID = columns["output_file_id"].flatMap { String.fromDatabaseValue($0) }
        ended.errorFileID = columns["error_file_id"].flatMap { String.fromDatabaseValue($0) }
        switch status {
        case "cancelled": ended.cancelledAt = now
        case "expired": ended.expiredAt = now
        default: ended.completedAt = now
        }
        try await announce(ended)
        guard try await store.transition(batch.id, to: status, from: ["finalizing"], stamp: stamp, now: now, set: columns) else { return }
        logger.info(
            "batches: ended",
            metadata: [
                "batch": "\(ended.id)", "status": "\(status)", "succeeded": "\(ended.succeeded)", "failed": "\(ended.failed)",
                "expired": "\(ended.expired)", "cancelled": "\(ended.cancelled)",
            ])
    }

    /// Queues the batch's webhook, when it has a callback URL; logs a failure instead of throwing.
    func announceEnd(_ batch: BatchRecord) async {
        do { try await announce(batch) } catch {
            logger.warning("batches: the webhook could not be queued", metadata: ["batch": "\(batch.id)", "error": "\(error)"])
        }
    }

    /// Queues the batch's webhook, when it has a callback URL.
    func announce(_ batch: BatchRecord) async throws {
        guard let url = batch.callbackURL else { return }
        let type = "batch." + batch.status
        let body = try BatchDocument.Webhook(type: type, batch: batch).body()
        try await webhooks.create(subject: batch.id, url: url, key: batch.keyID, type: type, body: body)
    }
}

/// One line of an OpenAI batch input file, read with the strict scanner: its fields of the right
/// types (absent otherwise), and its `body` kept as the bytes the client wrote, to be queued as
/// they are (not decoded and encoded again: a 50,000-line file costs one scan per line).
struct OpenAILine {
    var customID: String?
    var method: String?
    /// `url` when it is a string.
    var url: String?
    /// `url` as written, for an error that names it.
    var urlText: String?
    /// `body` when it is a JSON object.
    var body: [UInt8]?
    /// The body's own top-level `model`, when a string.
    var model: String?
    /// Whether the body asks for `stream: true`.
    var stream = false

    /// nil when the line is not one valid JSON object.
    init?(_ line: [UInt8]) {
        var read = OpenAILine(empty: ())
        let valid = line.withUnsafeBufferPointer { bytes -> Bool in
            func string(_ value: JSONScanner.Value) -> String? {
                value.kind == .string ? JSONScanner.decodeString(bytes, value.range) : nil
            }
            var scanner = JSONScanner(bytes)
            var bodyRange: Range<Int>?
            let members: ()? = try? scanner.objectMembers { (key, value) throws(Never) in
                if JSONScanner.stringToken(bytes, key, equals: "custom_id") {
                    read.customID = string(value)
                } else if JSONScanner.stringToken(bytes, key, equals: "method") {
                    read.method = string(value)
                } else if JSONScanner.stringToken(bytes, key, equals: "url") {
                    read.url = string(value)
                    read.urlText = read.url ?? String(decoding: bytes[value.range], as: UTF8.self)
                } else if JSONScanner.stringToken(bytes, key, equals: "body") {
                    bodyRange = value.kind == .object ? value.range : nil
                }
            }
            guard members != nil else { return false }
            if let bodyRange {
                read.body = Array(bytes[bodyRange])
                var inner = JSONScanner(bytes, range: bodyRange)
                _ = try? inner.objectMembers { (key, value) throws(Never) in
                    if JSONScanner.stringToken(bytes, key, equals: "model") {
                        read.model = string(value)
                    } else if JSONScanner.stringToken(bytes, key, equals: "stream") {
                        read.stream = value.kind == .bool && bytes[value.range.lowerBound] == UInt8(ascii: "t")
                    }
                }
            }
            return true
        }
        guard valid else { return nil }
        self = read
    }

    private init(empty: Void) {}
}
