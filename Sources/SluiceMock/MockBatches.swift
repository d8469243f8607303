import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore
import Synchronization

/// The providers' batch APIs on the mock: OpenAI's files (`POST /v1/files`, `GET /v1/files/{id}`,
/// `GET /v1/files/{id}/content`, `DELETE /v1/files/{id}`) and batches (`POST /v1/batches`,
/// `GET /v1/batches` (the list), `GET /v1/batches/{id}`, `POST /v1/batches/{id}/cancel`), and
/// Anthropic's message batches (`POST /v1/messages/batches`, `GET /v1/messages/batches` (the
/// list), `GET …/{id}`, `GET …/{id}/results`, `POST …/{id}/cancel`). A create answers after
/// `batchCreateDelay` (the batch is stored first).
///
/// Every line is answered when the batch is created, as a live call would be (no latency, no rate
/// limits; `errorRate` makes an errored line, `batchExpireRate` an expired one), and counted in
/// `/stats`. The answers show after `batchDelay`: OpenAI's status goes validating (the first
/// tenth), in_progress, finalizing (the last tenth), completed; Anthropic's in_progress, ended.
/// Output and results are shuffled, as the real ones are unordered: match them by `custom_id`.
/// Everything is in memory, bounded by `batchMaxStored` files and batches and `batchMaxBytes`
/// bytes (the oldest go first).
struct BatchStore {
    struct File {
        var id: String
        var purpose: String
        var filename: String
        var content: [UInt8]
        var createdAt: Int
    }

    enum Outcome { case succeeded, errored, expired }

    /// One of OpenAI's validation errors, with the input line it names.
    struct Failure {
        var code: String
        var message: String
        var line: Int?
        var param: String?

        var object: [String: Any] { ["code": code, "message": message, "line": line ?? NSNull(), "param": param ?? NSNull()] }
    }

    struct Line {
        var customID: String
        var outcome: Outcome
        /// The answer's body: the message or completion, or the error body of an errored line.
        var body: [UInt8]
    }

    struct Batch {
        var id: String
        var anthropic: Bool
        var endpoint = ""
        var inputFileID = ""
        /// The client's `metadata`, as JSON.
        var metadata: [UInt8]? = nil
        var createdAt: Int
        var started: ContinuousClock.Instant
        var lines: [Line] = []
        /// OpenAI's validation errors (`errors.data`): the batch fails instead of running.
        var failures: [Failure] = []
        /// When a cancel came, and how many lines were done by then.
        var cancelled: (at: Int, done: Int)?
        /// Set once the answers show: the output and error files, or Anthropic's results.
        var ended: (at: Int, outputFileID: String?, errorFileID: String?, results: [UInt8])?
    }

    var files: [String: File] = [:]
    var batches: [String: Batch] = [:]
    /// Ids in the order they were stored, with their sizes: the oldest go first.
    var order: [(id: String, file: Bool)] = []
    /// The bytes held: files' contents, batches' answers and results.
    var bytes = 0
    var serial = 0

    mutating func nextID(_ prefix: String) -> String {
        serial += 1
        return "\(prefix)\(serial)"
    }

    static func size(_ batch: Batch) -> Int {
        batch.lines.reduce(0) { $0 + $1.body.count + $1.customID.utf8.count + 16 } + (batch.ended?.results.count ?? 0)
    }

    mutating func store(_ file: File, limits: (count: Int, bytes: Int)) {
        if files[file.id] == nil { order.append((file.id, true)) }
        bytes += file.content.count - (files[file.id]?.content.count ?? 0)
        files[file.id] = file
        trim(limits)
    }

    /// Stores a new batch, or replaces one with its answers written.
    mutating func store(_ batch: Batch, limits: (count: Int, bytes: Int)) {
        if let old = batches[batch.id] { bytes -= Self.size(old) } else { order.append((batch.id, false)) }
        bytes += Self.size(batch)
        batches[batch.id] = batch
        trim(limits)
    }

    mutating func removeFile(_ id: String) -> Bool {
        guard let file = files.removeValue(forKey: id) else { return false }
        bytes -= file.content.count
        order.removeAll { $0.file && $0.id == id }
        return true
    }

    /// Drops the oldest until at most `count` files, `count` batches and `bytes` bytes are held
    /// (the newest stays, however large).
    private mutating func trim(_ limits: (count: Int, bytes: Int)) {
        var index = 0
        while index < order.count - 1 {
            let entry = order[index]
            let overCount = entry.file ? files.count > limits.count : batches.count > limits.count
            guard bytes > limits.bytes || overCount else {
                index += 1
                continue
            }
            if entry.file {
                _ = removeFile(entry.id)
            } else if let batch = batches.removeValue(forKey: entry.id) {
                bytes -= Self.size(batch)
                order.remove(at: index)
            }
        }
    }
}

extension MockProvider {
    /// OpenAI: at most 50,000 requests and 200 MB in one batch's input file.
    static let openAIBatchMaxRequests = 50_000
    static let openAIBatchMaxBytes = 200 << 20
    /// Anthropic: at most 100,000 requests and 256 MB in one message batch.
    static let anthropicBatchMaxRequests = 100_000
    static let anthropicBatchMaxBytes = 256 << 20
    static let openAIEndpoints: [String: Kind] = ["/v1/chat/completions": .chat, "/v1/completions": .completion, "/v1/embeddings": .embedding]

    func addBatchRoutes(to router: Router<BasicRequestContext>) {
        router.post("/v1/files") { request, _ in try await self.uploadFile(request) }
        router.get("/v1/files/:id") { _, context in self.withFile(context) { Self.object(Self.fileObject($0)) } }
        router.get("/v1/files/:id/content") { _, context in
            self.withFile(context) { Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(bytes: $0.content))) }
        }
        router.delete("/v1/files/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            let found = self.batchStore.withLock { store in
                store.removeFile(id)
            }
            guard found else { return Self.openAIError(.notFound, "No such File object: \(id)", param: "id") }
            return Self.object(["id": id, "object": "file", "deleted": true])
        }
        router.post("/v1/batches") { request, _ in try await self.createOpenAIBatch(request) }
        router.get("/v1/batches") { request, _ in self.listBatches(request, anthropic: false) }
        router.get("/v1/batches/:id") { _, context in self.showBatch(context, anthropic: false, request: nil) }
        router.post("/v1/batches/:id/cancel") { _, context in self.cancelBatch(context, anthropic: false, request: nil) }
        router.post("/v1/messages/batches") { request, _ in try await self.createAnthropicBatch(request) }
        router.get("/v1/messages/batches") { request, _ in self.listBatches(request, anthropic: true) }
        router.get("/v1/messages/batches/:id") { request, context in self.showBatch(context, anthropic: true, request: request) }
        router.post("/v1/messages/batches/:id/cancel") { request, context in self.cancelBatch(context, anthropic: true, request: request) }
        router.get("/v1/messages/batches/:id/results") { _, context in self.anthropicResults(context) }
    }

    // MARK: - OpenAI files

    private func uploadFile(_ request: Request) async throws -> Response {
        guard let boundary = MockMultipart.boundary(request.headers[.contentType] ?? "") else {
            return Self.openAIError(.badRequest, "The request must be multipart/form-data with 'file' and 'purpose'.", param: nil)
        }
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: Self.openAIBatchMaxBytes + (1 << 20)) } catch {
            return Self.openAIError(.contentTooLarge, "File exceeds the maximum size of \(Self.openAIBatchMaxBytes) bytes for a batch input file.", param: "file")
        }
        guard let parts = MockMultipart.parts(Array(buffer: body), boundary: boundary) else {
            return Self.openAIError(.badRequest, "The multipart body is not well formed.", param: nil)
        }
        guard let purpose = parts.first(where: { $0.name == "purpose" }).map({ String(decoding: $0.content, as: UTF8.self) }) else {
            return Self.openAIError(.badRequest, "Missing required parameter: 'purpose'.", param: "purpose", code: "missing_required_parameter")
        }
        guard purpose == "batch" else {
            return Self.openAIError(.badRequest, "The mock takes only purpose 'batch', not '\(purpose.prefix(40))'.", param: "purpose")
        }
        guard let file = parts.first(where: { $0.name == "file" }) else {
            return Self.openAIError(.badRequest, "Missing required parameter: 'file'.", param: "file", code: "missing_required_parameter")
        }
        guard file.content.count <= Self.openAIBatchMaxBytes else {
            return Self.openAIError(.contentTooLarge, "File exceeds the maximum size of \(Self.openAIBatchMaxBytes) bytes for a batch input file.", param: "file")
        }
        let cap = (configuration.batchMaxStored, configuration.batchMaxBytes)
        let stored = batchStore.withLock { store in
            let file = BatchStore.File(
                id: store.nextID("file-mock"), purpose: "batch", filename: String((file.filename ?? "batch.jsonl").prefix(255)),
                content: file.content, createdAt: Self.unixNow())
            store.store(file, limits: cap)
            return file
        }
        return Self.object(Self.fileObject(stored))
    }

    private func withFile(_ context: BasicRequestContext, _ answer: (BatchStore.File) -> Response) -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let file = batchStore.withLock({ $0.files[id] }) else {
            return Self.openAIError(.notFound, "No such File object: \(id)", param: "id")
        }
        return answer(file)
    }

    static func fileObject(_ file: BatchStore.File) -> [String: Any] {
        [
            "id": file.id, "object": "file", "bytes": file.content.count, "created_at": file.createdAt, "filename": file.filename,
            "purpose": file.purpose, "status": "processed", "expires_at": NSNull(), "status_details": NSNull(),
        ]
    }

    // MARK: - OpenAI batches

    private func createOpenAIBatch(_ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 20)
        guard let object = try? JSONSerialization.jsonObject(with: body.withUnsafeReadableBytes { Data($0) }) as? [String: Any] else {
            return Self.openAIError(.badRequest, "We could not parse the JSON body of your request.", param: nil)
        }
        let known: Set = ["input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"]
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            return Self.openAIError(.badRequest, "Unrecognized request argument supplied: \(unknown.prefix(64))", param: nil)
        }
        guard let endpoint = object["endpoint"] as? String, let kind = Self.openAIEndpoints[endpoint] else {
            return Self.openAIError(.badRequest, "endpoint must be one of /v1/chat/completions, /v1/completions, /v1/embeddings.", param: "endpoint")
        }
        guard object["completion_window"] as? String == "24h" else {
            return Self.openAIError(.badRequest, "completion_window must be '24h'.", param: "completion_window")
        }
        guard let fileID = object["input_file_id"] as? String else {
            return Self.openAIError(.badRequest, "Missing required parameter: 'input_file_id'.", param: "input_file_id", code: "missing_required_parameter")
        }
        guard let file = batchStore.withLock({ $0.files[fileID] }) else {
            return Self.openAIError(.notFound, "No such File object: \(fileID.prefix(64))", param: "input_file_id")
        }
        var batch = BatchStore.Batch(id: "", anthropic: false, createdAt: Self.unixNow(), started: .now)
        batch.endpoint = endpoint
        batch.inputFileID = fileID
        if let metadata = object["metadata"], !(metadata is NSNull) {
            guard metadata is [String: Any], let bytes = try? JSONSerialization.data(withJSONObject: metadata) else {
                return Self.openAIError(.badRequest, "metadata must be an object of strings.", param: "metadata")
            }
            batch.metadata = Array(bytes)
        }
        let (requests, failures) = Self.openAILines(file.content, endpoint: endpoint)
        if failures.isEmpty {
            batch.lines = answerLines(requests, kind: kind, anthropic: false)
        } else {
            batch.failures = failures
        }
        let (stored, now) = try await storeNew(batch, prefix: "batch_mock")
        return Self.object(openAIBatchObject(stored, now: now))
    }

    /// Stores a batch just made under a new id with `prefix`, its clock started now (once its
    /// lines are answered: 50,000 take a while; a zero delay ends at once), waits the create's
    /// delay, and returns it as it is then.
    func storeNew(_ made: BatchStore.Batch, prefix: String) async throws -> (batch: BatchStore.Batch, now: ContinuousClock.Instant) {
        var batch = made
        batch.started = .now
        let cap = (configuration.batchMaxStored, configuration.batchMaxBytes)
        let id = batchStore.withLock { store in
            batch.id = store.nextID(prefix)
            store.store(batch, limits: cap)
            return batch.id
        }
        try await createDelay()
        let now = ContinuousClock.now
        return (observe(id, now: now) ?? batch, now)
    }

    /// The input file's requests as (custom_id, body), or the validation errors OpenAI reports
    /// (at most ten, each with its line number).
    static func openAILines(_ content: [UInt8], endpoint: String) -> ([(String, [UInt8])], [BatchStore.Failure]) {
        var requests: [(String, [UInt8])] = []
        var failures: [BatchStore.Failure] = []
        var seen = Set<String>()
        func fail(_ code: String, _ message: String, line: Int, param: String? = nil) {
            if failures.count < 10 { failures.append(.init(code: code, message: message, line: line, param: param)) }
        }
        var number = 0
        // Line by line without splitting up front: `split` would hold a 32-byte slice per line at
        // once, 6.4 GB for a 200 MiB file of newlines.
        var start = content.startIndex
        while start <= content.endIndex {
            let end = content[start...].firstIndex(of: UInt8(ascii: "\n")) ?? content.endIndex
            let raw = content[start..<end]
            start = end + 1
            number += 1
            if raw.allSatisfy({ $0 == 32 || $0 == 13 || $0 == 9 }) { continue }
            guard requests.count < openAIBatchMaxRequests else {
                return ([], [.init(code: "too_many_tasks", message: "The batch input file has more than \(openAIBatchMaxRequests) requests.")])
            }
            guard let line = try? JSONSerialization.jsonObject(with: Data(raw)) as? [String: Any] else {
                fail("invalid_json_line", "This line is not parseable as valid JSON.", line: number)
                continue
            }
            guard let customID = line["custom_id"] as? String, !customID.isEmpty else {
                fail("missing_required_parameter", "Missing required parameter: 'custom_id'.", line: number, param: "custom_id")
                continue
            }
            guard line["method"] as? String == "POST" else {
                fail("invalid_request", "method must be 'POST'.", line: number, param: "method")
                continue
            }
            guard line["url"] as? String == endpoint else {
                fail("url_mismatch", "The URL provided for this request does not match the batch endpoint.", line: number, param: "url")
                continue
            }
            guard let body = line["body"] as? [String: Any], let bytes = try? JSONSerialization.data(withJSONObject: body) else {
                fail("missing_required_parameter", "Missing required parameter: 'body'.", line: number, param: "body")
                continue
            }
            guard seen.insert(customID).inserted else {
                fail("duplicate_custom_id", "The custom_id for this request is a duplicate of another request.", line: number, param: "custom_id")
                continue
            }
            requests.append((customID, Array(bytes)))
        }
        if requests.isEmpty && failures.isEmpty {
            failures.append(.init(code: "empty_file", message: "The batch input file is empty."))
        }
        return (requests, failures)
    }

    private func openAIBatchObject(_ batch: BatchStore.Batch, now: ContinuousClock.Instant) -> [String: Any] {
        let delay = Bounded.seconds(configuration.batchDelay)
        let at = { (fraction: Double) -> Int in batch.createdAt + Int((delay * fraction).rounded(.up)) }
        let phase = self.phase(batch, now: now)
        var object: [String: Any] = [
            "id": batch.id, "object": "batch", "endpoint": batch.endpoint, "errors": NSNull(), "input_file_id": batch.inputFileID,
            "completion_window": "24h", "status": "", "output_file_id": NSNull(), "error_file_id": NSNull(),
            "created_at": batch.createdAt, "in_progress_at": NSNull(), "expires_at": batch.createdAt + 86_400,
            "finalizing_at": NSNull(), "completed_at": NSNull(), "failed_at": NSNull(), "expired_at": NSNull(),
            "cancelling_at": NSNull(), "cancelled_at": NSNull(), "metadata": batch.metadata.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) } ?? NSNull(),
            "request_counts": ["total": batch.lines.count, "completed": 0, "failed": 0],
        ]
        if !batch.failures.isEmpty {
            object["errors"] = ["object": "list", "data": batch.failures.map(\.object)]
            object["status"] = phase < 0.1 ? "validating" : "failed"
            if phase >= 0.1 { object["failed_at"] = at(0.1) }
            return object
        }
        if phase >= 0.1 { object["in_progress_at"] = at(0.1) }
        if let cancelled = batch.cancelled {
            object["cancelling_at"] = cancelled.at
            object["status"] = "cancelling"
        } else {
            object["status"] = phase < 0.1 ? "validating" : phase < 0.9 ? "in_progress" : phase < 1 ? "finalizing" : "completed"
            if phase >= 0.9 { object["finalizing_at"] = at(0.9) }
        }
        if let ended = batch.ended {
            let done = batch.lines.prefix(batch.cancelled?.done ?? batch.lines.count)
            object["request_counts"] = [
                "total": batch.lines.count, "completed": done.filter { $0.outcome == .succeeded }.count,
                "failed": done.filter { $0.outcome != .succeeded }.count,
            ]
            object["output_file_id"] = ended.outputFileID ?? NSNull()
            object["error_file_id"] = ended.errorFileID ?? NSNull()
            if batch.cancelled != nil {
                object["status"] = "cancelled"
                object["cancelled_at"] = ended.at
            } else {
                object["completed_at"] = ended.at
            }
        }
        return object
    }

    // MARK: - Anthropic message batches

    private func createAnthropicBatch(_ request: Request) async throws -> Response {
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: Self.anthropicBatchMaxBytes) } catch {
            return Self.anthropicError(.contentTooLarge, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
        }
        guard let object = try? JSONSerialization.jsonObject(with: body.withUnsafeReadableBytes { Data($0) }) as? [String: Any] else {
            return Self.anthropicError(.badRequest, "invalid_request_error", "The request body is not valid JSON.")
        }
        if let unknown = object.keys.sorted().first(where: { $0 != "requests" }) {
            return Self.anthropicError(.badRequest, "invalid_request_error", "\(unknown.prefix(64)): Extra inputs are not permitted")
        }
        guard let items = object["requests"] as? [Any], !items.isEmpty else {
            return Self.anthropicError(.badRequest, "invalid_request_error", "requests: Field required, a list of at least one request")
        }
        guard items.count <= Self.anthropicBatchMaxRequests else {
            return Self.anthropicError(
                .badRequest, "invalid_request_error", "requests: a batch holds at most \(Self.anthropicBatchMaxRequests) requests, not \(items.count)")
        }
        var requests: [(String, [UInt8])] = []
        var seen = Set<String>()
        for (index, item) in items.enumerated() {
            guard let item = item as? [String: Any] else {
                return Self.anthropicError(.badRequest, "invalid_request_error", "requests.\(index): Input should be a valid dictionary")
            }
            if let unknown = item.keys.sorted().first(where: { $0 != "custom_id" && $0 != "params" }) {
                return Self.anthropicError(.badRequest, "invalid_request_error", "requests.\(index).\(unknown.prefix(64)): Extra inputs are not permitted")
            }
            guard let customID = item["custom_id"] as? String, Self.isAnthropicCustomID(customID) else {
                return Self.anthropicError(
                    .badRequest, "invalid_request_error", "requests.\(index).custom_id: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'")
            }
            guard seen.insert(customID).inserted else {
                return Self.anthropicError(.badRequest, "invalid_request_error", "requests.\(index).custom_id: Duplicate custom_id \(customID)")
            }
            guard let params = item["params"] as? [String: Any], let bytes = try? JSONSerialization.data(withJSONObject: params) else {
                return Self.anthropicError(.badRequest, "invalid_request_error", "requests.\(index).params: Input should be a valid dictionary")
            }
            requests.append((customID, Array(bytes)))
        }
        var batch = BatchStore.Batch(id: "", anthropic: true, createdAt: Self.unixNow(), started: .now)
        batch.lines = answerLines(requests, kind: .messages, anthropic: true)
        let (stored, now) = try await storeNew(batch, prefix: "msgbatch_mock")
        return Self.object(anthropicBatchObject(stored, now: now, request: request))
    }

    static func isAnthropicCustomID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count)
            && id.utf8.allSatisfy { (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 95 || $0 == 45 }
    }

    private func anthropicBatchObject(_ batch: BatchStore.Batch, now: ContinuousClock.Instant, request: Request?) -> [String: Any] {
        var counts = ["processing": batch.lines.count, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0]
        var object: [String: Any] = [
            "id": batch.id, "type": "message_batch", "processing_status": batch.cancelled == nil ? "in_progress" : "canceling",
            "created_at": Self.rfc3339(Date(timeIntervalSince1970: Double(batch.createdAt))),
            "expires_at": Self.rfc3339(Date(timeIntervalSince1970: Double(batch.createdAt + 86_400))),
            "ended_at": NSNull(), "archived_at": NSNull(), "results_url": NSNull(),
            "cancel_initiated_at": batch.cancelled.map { Self.rfc3339(Date(timeIntervalSince1970: Double($0.at))) } ?? NSNull(),
        ]
        if let ended = batch.ended {
            let done = batch.cancelled?.done ?? batch.lines.count
            counts = [
                "processing": 0, "succeeded": batch.lines.prefix(done).filter { $0.outcome == .succeeded }.count,
                "errored": batch.lines.prefix(done).filter { $0.outcome == .errored }.count, "canceled": batch.lines.count - done,
                "expired": batch.lines.prefix(done).filter { $0.outcome == .expired }.count,
            ]
            object["processing_status"] = "ended"
            object["ended_at"] = Self.rfc3339(Date(timeIntervalSince1970: Double(ended.at)))
            // An absolute URL, as the real API gives: the SDK fetches it as it is.
            let host = request?.head.authority ?? "127.0.0.1"
            object["results_url"] = "http://\(host)/v1/messages/batches/\(batch.id)/results"
        }
        object["request_counts"] = counts
        return object
    }

    private func anthropicResults(_ context: BasicRequestContext) -> Response {
        let id = context.parameters.get("id") ?? ""
        guard let batch = observe(id, now: .now), batch.anthropic else {
            return Self.anthropicError(.notFound, "not_found_error", "No such message batch: \(id.prefix(64))")
        }
        guard let ended = batch.ended else {
            return Self.anthropicError(.badRequest, "invalid_request_error", "Batch \(batch.id) is still processing; results are available once it has ended.")
        }
        return Response(status: .ok, headers: [.contentType: "application/binary"], body: .init(byteBuffer: ByteBuffer(bytes: ended.results)))
    }

    // MARK: - Both

    /// `batchCreateDelay`: the batch is stored (and running) before the create call answers, so a
    /// client killed while it waits has created a batch it never learned the id of.
    private func createDelay() async throws {
        let delay = configuration.batchCreateDelay
        if delay > .zero { try await Task.sleep(for: delay) }
    }

    /// `GET /v1/batches?after=&limit=` (OpenAI: limit 1...100, default 20) and
    /// `GET /v1/messages/batches?after_id=&before_id=&limit=` (Anthropic: limit 1...1000, default
    /// 20): the batches newest first, `{"data", "first_id", "last_id", "has_more"}` (OpenAI adds
    /// `"object": "list"`). `after`/`after_id` starts the page just past (older than) that batch,
    /// `before_id` ends it just before (newer than) it; a cursor the mock does not hold (never
    /// made, or dropped as old) gives an empty page.
    private func listBatches(_ request: Request, anthropic: Bool) -> Response {
        let query = request.uri.queryParameters
        let maxLimit = anthropic ? 1000 : 100
        var limit = 20
        if let text = query["limit"] {
            guard let value = Bounded.int(String(text), in: 1...maxLimit) else {
                return anthropic
                    ? Self.anthropicError(.badRequest, "invalid_request_error", "limit: Input should be between 1 and \(maxLimit)")
                    : Self.openAIError(.badRequest, "limit must be between 1 and \(maxLimit).", param: "limit")
            }
            limit = value
        }
        let after = query[anthropic ? "after_id" : "after"].map(String.init)
        let before = anthropic ? query["before_id"].map(String.init) : nil
        // Newest first: the order they were stored in, reversed.
        let ids = batchStore.withLock { store in
            store.order.reversed().filter { !$0.file && store.batches[$0.id]?.anthropic == anthropic }.map(\.id)
        }
        var window = ids[...]
        if let after {
            guard let index = ids.firstIndex(of: after) else { return listPage([], hasMore: false, anthropic: anthropic, request: request) }
            window = ids[(index + 1)...]
        }
        var page: ArraySlice<String>
        var hasMore: Bool
        if let before, after == nil {
            guard let index = ids.firstIndex(of: before) else { return listPage([], hasMore: false, anthropic: anthropic, request: request) }
            page = ids[..<index].suffix(limit)
            hasMore = page.startIndex > ids.startIndex
        } else {
            page = window.prefix(limit)
            hasMore = window.count > limit
        }
        let now = ContinuousClock.now
        let batches = page.compactMap { observe($0, now: now) }
        return listPage(batches, hasMore: hasMore, anthropic: anthropic, request: request)
    }

    private func listPage(_ batches: [BatchStore.Batch], hasMore: Bool, anthropic: Bool, request: Request) -> Response {
        let now = ContinuousClock.now
        var object: [String: Any] = [
            "data": batches.map { anthropic ? anthropicBatchObject($0, now: now, request: request) : openAIBatchObject($0, now: now) },
            "first_id": batches.first?.id ?? NSNull(), "last_id": batches.last?.id ?? NSNull(), "has_more": hasMore,
        ]
        if !anthropic { object["object"] = "list" }
        return Self.object(object)
    }

    /// Answers each request as a live call would be answered (without its latency), and counts it.
    private func answerLines(_ requests: [(String, [UInt8])], kind: Kind, anthropic: Bool) -> [BatchStore.Line] {
        var random = SystemRandomNumberGenerator()
        let errorRate = configuration.errorRate
        let expireRate = configuration.batchExpireRate
        let first = countBatchLines(requests.map(\.0))
        return requests.enumerated().map { index, request in
            let draw = Double.random(in: 0..<1, using: &random)
            if draw < errorRate {
                return .init(
                    customID: request.0, outcome: .errored,
                    body: Self.errorBody(anthropic: anthropic, status: 500, message: "The server had an error while processing your request."))
            }
            if draw < errorRate + expireRate { return .init(customID: request.0, outcome: .expired, body: []) }
            let summary = request.1.withUnsafeBufferPointer { RequestSummary($0) }
            return .init(customID: request.0, outcome: .succeeded, body: Self.body(kind, number: first + index, summary: summary))
        }
    }

    /// 0 at creation, 1 once `batchDelay` has passed.
    private func phase(_ batch: BatchStore.Batch, now: ContinuousClock.Instant) -> Double {
        let delay = configuration.batchDelay
        guard delay > .zero else { return 1 }
        return Bounded.clamp((now - batch.started) / delay, to: 0...1)
    }

    /// The batch, its answers written out if they are due (once: then they stay as they are).
    private func observe(_ id: String, now: ContinuousClock.Instant) -> BatchStore.Batch? {
        let phase = { (batch: BatchStore.Batch) in self.phase(batch, now: now) }
        let cap = (configuration.batchMaxStored, configuration.batchMaxBytes)
        return batchStore.withLock { store -> BatchStore.Batch? in
            guard var batch = store.batches[id] else { return nil }
            guard batch.ended == nil, batch.failures.isEmpty, batch.cancelled != nil || phase(batch) >= 1 else { return batch }
            let done = batch.cancelled?.done ?? batch.lines.count
            var output: [[UInt8]] = []
            var errors: [[UInt8]] = []
            for (index, line) in batch.lines.enumerated() {
                let custom = Self.jsonString(line.customID)
                if batch.anthropic {
                    let result: String
                    switch (index < done, line.outcome) {
                    case (false, _): result = #"{"type":"canceled"}"#
                    case (true, .succeeded): result = #"{"type":"succeeded","message":\#(String(decoding: line.body, as: UTF8.self))}"#
                    case (true, .errored): result = #"{"type":"errored","error":\#(String(decoding: line.body, as: UTF8.self))}"#
                    case (true, .expired): result = #"{"type":"expired"}"#
                    }
                    output.append(Array(#"{"custom_id":\#(custom),"result":\#(result)}"#.utf8))
                    continue
                }
                let prefix = #"{"id":"batch_req_mock\#(index + 1)","custom_id":\#(custom),"#
                switch (index < done, line.outcome) {
                case (false, _):
                    errors.append(Array((prefix + #""response":null,"error":{"code":"batch_cancelled","message":"This request was not executed because the batch was cancelled."}}"#).utf8))
                case (true, .succeeded):
                    output.append(Array((prefix + #""response":{"status_code":200,"request_id":"req_mock\#(index + 1)","body":\#(String(decoding: line.body, as: UTF8.self))},"error":null}"#).utf8))
                case (true, .errored):
                    errors.append(Array((prefix + #""response":{"status_code":500,"request_id":"req_mock\#(index + 1)","body":\#(String(decoding: line.body, as: UTF8.self))},"error":null}"#).utf8))
                case (true, .expired):
                    errors.append(Array((prefix + #""response":null,"error":{"code":"batch_expired","message":"This request could not be executed before the completion window expired."}}"#).utf8))
                }
            }
            // Unordered, as the real ones are.
            output.shuffle()
            errors.shuffle()
            let jsonl = { (lines: [[UInt8]]) in Array(lines.joined(separator: [UInt8(ascii: "\n")])) + [UInt8(ascii: "\n")] }
            let at = Self.unixNow()
            if batch.anthropic {
                batch.ended = (at, nil, nil, jsonl(output))
            } else {
                let file = { (content: [UInt8], store: inout BatchStore) -> String in
                    let file = BatchStore.File(id: store.nextID("file-mock"), purpose: "batch_output", filename: "batch_output.jsonl", content: content, createdAt: at)
                    store.store(file, limits: cap)
                    return file.id
                }
                let outputID = output.isEmpty ? nil : file(jsonl(output), &store)
                let errorID = errors.isEmpty ? nil : file(jsonl(errors), &store)
                batch.ended = (at, outputID, errorID, [])
            }
            store.store(batch, limits: cap)
            return batch
        }
    }

    private func showBatch(_ context: BasicRequestContext, anthropic: Bool, request: Request?) -> Response {
        let id = context.parameters.get("id") ?? ""
        let now = ContinuousClock.now
        guard let batch = observe(id, now: now), batch.anthropic == anthropic else {
            return anthropic
                ? Self.anthropicError(.notFound, "not_found_error", "No such message batch: \(id.prefix(64))")
                : Self.openAIError(.notFound, "No batch found with id '\(id.prefix(64))'.", param: "id")
        }
        return Self.object(anthropic ? anthropicBatchObject(batch, now: now, request: request) : openAIBatchObject(batch, now: now))
    }

    /// A cancel answers `cancelling` (`canceling`); the next look finds it cancelled (ended), with
    /// the lines done by then (a share in proportion to the time passed) and the rest cancelled.
    private func cancelBatch(_ context: BasicRequestContext, anthropic: Bool, request: Request?) -> Response {
        let id = context.parameters.get("id") ?? ""
        let now = ContinuousClock.now
        let phase = { (batch: BatchStore.Batch) in self.phase(batch, now: now) }
        enum Outcome { case missing, finished(BatchStore.Batch), cancelling(BatchStore.Batch) }
        let outcome = batchStore.withLock { store -> Outcome in
            guard var batch = store.batches[id], batch.anthropic == anthropic else { return .missing }
            guard batch.ended == nil, batch.cancelled == nil, batch.failures.isEmpty, phase(batch) < 1 else { return .finished(batch) }
            let progress = Bounded.clamp((phase(batch) - 0.1) / 0.8, to: 0...1)
            let done = Bounded.int((Double(batch.lines.count) * progress).rounded(.down), in: 0...batch.lines.count) ?? 0
            batch.cancelled = (Self.unixNow(), done)
            store.batches[id] = batch
            return .cancelling(batch)
        }
        switch outcome {
        case .missing:
            return anthropic
                ? Self.anthropicError(.notFound, "not_found_error", "No such message batch: \(id.prefix(64))")
                : Self.openAIError(.notFound, "No batch found with id '\(id.prefix(64))'.", param: "id")
        case .finished(let found):
            let batch = observe(id, now: now) ?? found
            if anthropic { return Self.object(anthropicBatchObject(batch, now: now, request: request)) }
            return Self.openAIError(.conflict, "Cannot cancel a batch with status '\(openAIBatchObject(batch, now: now)["status"] ?? "")'.", param: nil)
        case .cancelling(let batch):
            return Self.object(anthropic ? anthropicBatchObject(batch, now: now, request: request) : openAIBatchObject(batch, now: now))
        }
    }

    // MARK: - Bodies

    static func unixNow() -> Int { Int(Date().timeIntervalSince1970) }

    static func object(_ object: [String: Any]) -> Response {
        json(.ok, Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)))
    }

    static func jsonString(_ text: String) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: text, options: [.fragmentsAllowed])) ?? Data(#""""#.utf8), as: UTF8.self)
    }

    static func openAIError(_ status: HTTPResponse.Status, _ message: String, param: String?, code: String? = nil) -> Response {
        let error: [String: Any] = ["message": message, "type": "invalid_request_error", "param": param ?? NSNull(), "code": code ?? NSNull()]
        var response = object(["error": error])
        response.status = status
        return response
    }

    static func anthropicError(_ status: HTTPResponse.Status, _ type: String, _ message: String) -> Response {
        var response = object(["type": "error", "error": ["type": type, "message": message]])
        response.status = status
        return response
    }
}

/// Just enough of `multipart/form-data` for `POST /v1/files`: the parts' names, filenames and
/// contents. The boundary is at most 70 characters (RFC 2046), so finding each one costs at most
/// 74 comparisons a byte: time linear in the body.
enum MockMultipart {
    struct Part {
        var name: String
        var filename: String?
        var content: [UInt8]
    }

    static func boundary(_ contentType: String) -> String? {
        let pieces = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard pieces.first?.lowercased() == "multipart/form-data" else { return nil }
        for piece in pieces.dropFirst() where piece.lowercased().hasPrefix("boundary=") {
            var value = piece.dropFirst("boundary=".count)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = value.dropFirst().dropLast() }
            guard (1...70).contains(value.utf8.count), !value.contains("\r"), !value.contains("\n") else { return nil }
            return String(value)
        }
        return nil
    }

    /// The parts, or nil when the body is not well formed (or has more than 16 parts).
    static func parts(_ body: [UInt8], boundary: String) -> [Part]? {
        let delimiter = Array("--\(boundary)".utf8)
        var cursor = 0
        guard let first = find(delimiter, in: body, from: 0) else { return nil }
        cursor = first + delimiter.count
        var parts: [Part] = []
        let separator = Array("\r\n\r\n".utf8)
        let next = Array("\r\n--\(boundary)".utf8)
        while parts.count <= 16 {
            // After a delimiter: "--" ends the body, CRLF starts a part.
            guard cursor + 2 <= body.count else { return nil }
            if body[cursor] == UInt8(ascii: "-"), body[cursor + 1] == UInt8(ascii: "-") { return parts }
            guard body[cursor] == 13, body[cursor + 1] == 10 else { return nil }
            cursor += 2
            guard let headerEnd = find(separator, in: body, from: cursor), headerEnd - cursor <= 8192 else { return nil }
            let headers = String(decoding: body[cursor..<headerEnd], as: UTF8.self)
            let contentStart = headerEnd + separator.count
            guard let contentEnd = find(next, in: body, from: contentStart) else { return nil }
            var name: String?
            var filename: String?
            for header in headers.split(separator: "\r\n") where header.lowercased().hasPrefix("content-disposition:") {
                for field in header.split(separator: ";").dropFirst() {
                    let pair = field.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
                    guard pair.count == 2 else { continue }
                    let value = pair[1].hasPrefix("\"") && pair[1].hasSuffix("\"") && pair[1].count >= 2 ? String(pair[1].dropFirst().dropLast()) : String(pair[1])
                    if pair[0] == "name" { name = value }
                    if pair[0] == "filename" { filename = value }
                }
            }
            guard let name else { return nil }
            parts.append(Part(name: name, filename: filename, content: Array(body[contentStart..<contentEnd])))
            cursor = contentEnd + next.count
        }
        return nil
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, start >= 0, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        let first = needle[0]
        var index = start
        while index <= haystack.count - needle.count {
            if haystack[index] == first {
                var matched = 1
                while matched < needle.count, haystack[index + matched] == needle[matched] { matched += 1 }
                if matched == needle.count { return index }
            }
            index += 1
        }
        return nil
    }
}
