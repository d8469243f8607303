import Foundation
import HTTPTypes
import Hummingbird
import SluiceBatch
import SluiceCore
import SluiceStore

/// The batch APIs, compatible with the official SDKs (only their base URL pointed at Sluice):
///
/// - OpenAI files: `POST /v1/files` (multipart: `file`, `purpose=batch`), `GET /v1/files`,
///   `GET /v1/files/{id}`, `GET /v1/files/{id}/content`, `DELETE /v1/files/{id}`.
/// - OpenAI batches: `POST /v1/batches` `{input_file_id, endpoint, completion_window, metadata}`
///   (and Sluice's `callback_url`), `GET /v1/batches/{id}`, `POST /v1/batches/{id}/cancel`,
///   `GET /v1/batches?after=&limit=`.
/// - Anthropic Message Batches: `POST /v1/messages/batches` `{requests: [{custom_id, params}]}`,
///   `GET /v1/messages/batches[/{id}]`, `POST …/{id}/cancel`, `GET …/{id}/results` (JSONL),
///   `DELETE …/{id}`.
///
/// Every file and batch belongs to its key's tenant; another tenant's is 404.
struct BatchesController: Sendable {
    /// Nil: this process serves no batches (503).
    let batches: BatchService?
    /// A batch is admitted as a submit of as many jobs is.
    let admission: KeyAdmission
    let callbacks: Callbacks
    /// The largest file upload.
    let maxFileBytes: Int

    /// `POST /v1/batches` (OpenAI's shape, and Sluice's `callback_url`).
    struct CreateBatch: Decodable, RefusesUnknownFields {
        static let fields: Set<String> = ["input_file_id", "endpoint", "completion_window", "metadata", "callback_url"]
        let inputFileID: String
        let endpoint: String
        let completionWindow: String
        let metadata: [String: String]?
        let callbackURL: String?

        enum CodingKeys: String, CodingKey {
            case endpoint, metadata
            case inputFileID = "input_file_id", completionWindow = "completion_window", callbackURL = "callback_url"
        }

        init(from decoder: any Decoder) throws {
            try Self.refuseUnknownFields(in: decoder, noun: "parameter")
            let container = try decoder.container(keyedBy: CodingKeys.self)
            inputFileID = try container.decode(String.self, forKey: .inputFileID)
            endpoint = try container.decode(String.self, forKey: .endpoint)
            completionWindow = try container.decode(String.self, forKey: .completionWindow)
            metadata = try container.decodeIfPresent([String: String].self, forKey: .metadata)
            if let metadata, metadata.count > 16 {
                throw APIError.invalid("'metadata' must be an object of at most 16 string values", param: "metadata")
            }
            callbackURL = try container.decodeIfPresent(String.self, forKey: .callbackURL)
        }
    }

    /// `POST /v1/messages/batches`: only Sluice's `callback_url` is read here; the batch service
    /// reads the rest of the body (Anthropic's shape).
    struct MessageBatchCallback: Decodable {
        let callbackURL: String?

        enum CodingKeys: String, CodingKey { case callbackURL = "callback_url" }
    }

    /// An uploaded file, as OpenAI's files API shows it.
    struct FileObject: ResponseEncodable {
        let id: String
        var object = "file"
        let bytes: Int
        let createdAt: Int64
        let filename: String
        let purpose: String
        var status = "processed"
        @ExplicitNull var statusDetails: String? = nil
        @ExplicitNull var expiresAt: Int64? = nil

        enum CodingKeys: String, CodingKey {
            case id, object, bytes, filename, purpose, status
            case createdAt = "created_at", statusDetails = "status_details", expiresAt = "expires_at"
        }

        init(_ file: StoredFile) {
            id = file.id
            bytes = file.bytes
            createdAt = file.createdAt.value / 1000
            filename = file.filename
            purpose = file.purpose
        }
    }

    /// A list page as both APIs write it.
    struct Page<Element: Encodable & Sendable>: ResponseEncodable {
        var object = "list"
        let data: [Element]
        let hasMore: Bool
        @ExplicitNull var firstID: String?
        @ExplicitNull var lastID: String?

        enum CodingKeys: String, CodingKey {
            case object, data
            case hasMore = "has_more", firstID = "first_id", lastID = "last_id"
        }
    }

    /// A batch as its API shows it (SluiceBatch's `BatchDocument`), as an answer.
    struct BatchObject: ResponseEncodable {
        let document: BatchDocument

        init(_ document: BatchDocument) { self.document = document }

        func encode(to encoder: any Encoder) throws { try document.encode(to: encoder) }
    }

    /// `{"id", "object": "file", "deleted": true}` (OpenAI) or `{"id", "type": "message_batch_deleted"}` (Anthropic).
    struct Deleted: ResponseEncodable {
        let id: String
        var object: String?
        var deleted: Bool?
        var type: String?
    }

    func addRoutes(to v1: RouterGroup<SluiceRequestContext>) {
        v1.post("files") { request, context in try await self.uploadFile(request, context) }
        v1.get("files") { request, context in try await self.listFiles(request, context) }
        v1.get("files/:id") { _, context in FileObject(try await self.ownedFile(context)) }
        v1.get("files/:id/content") { _, context in try await self.fileContent(context) }
        v1.delete("files/:id") { _, context in try await self.deleteFile(context) }
        v1.post("batches") { request, context in try await self.createBatch(request, context) }
        v1.get("batches") { request, context in try await self.listBatches(request, context, api: .openai) }
        v1.get("batches/:id") { request, context in try await self.showBatch(request, context, api: .openai) }
        v1.post("batches/:id/cancel") { request, context in try await self.cancelBatch(request, context, api: .openai) }
        v1.post("messages/batches") { request, context in try await self.createMessageBatch(request, context) }
        v1.get("messages/batches") { request, context in try await self.listBatches(request, context, api: .anthropic) }
        v1.get("messages/batches/:id") { request, context in try await self.showBatch(request, context, api: .anthropic) }
        v1.post("messages/batches/:id/cancel") { request, context in try await self.cancelBatch(request, context, api: .anthropic) }
        v1.get("messages/batches/:id/results") { _, context in try await self.messageBatchResults(context) }
        v1.delete("messages/batches/:id") { _, context in try await self.deleteMessageBatch(context) }
    }

    private var batchService: BatchService {
        get throws {
            guard let batches else {
                throw APIError(.serviceUnavailable, type: "unavailable", message: "batches are not served by this process")
            }
            return batches
        }
    }

    /// Runs a batch call, turning its refusals into 4xx.
    private func batchCall<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let error as BatchError {
            switch error.kind {
            case .invalid: throw APIError.invalid(error.message, param: error.param)
            case .notFound: throw APIError(.notFound, type: "not_found", message: error.message, param: error.param)
            case .conflict: throw APIError(.conflict, type: "conflict", message: error.message, param: error.param)
            }
        }
    }

    // MARK: - Files

    private func uploadFile(_ request: Request, _ context: SluiceRequestContext) async throws -> FileObject {
        let key = try context.require(.submit)
        let service = try batchService
        // The boundary is checked (at most 70 bytes, RFC 2046) before any byte of the body is read.
        let named: String?
        do throws(Multipart.Problem) { named = try Multipart.boundary(contentType: request.headers[.contentType] ?? "") } catch {
            throw APIError.invalid(error.message, param: "Content-Type")
        }
        guard let boundary = named else {
            throw APIError(.unsupportedMediaType, type: "unsupported_media_type", message: "send multipart/form-data with 'file' and 'purpose'")
        }
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: maxFileBytes + 64 << 10) } catch {
            throw APIError(.contentTooLarge, type: "too_large", message: "a file may hold at most \(maxFileBytes) bytes", param: "file")
        }
        let form: Multipart
        do throws(Multipart.Problem) { form = try Multipart(body, boundary: boundary) } catch { throw APIError.invalid(error.message) }
        guard let purposePart = form.part("purpose") else { throw APIError.invalid("'purpose' is required: batch", param: "purpose") }
        let purpose = String(decoding: purposePart.content, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard purpose == "batch" else { throw APIError.invalid("purpose must be 'batch'", param: "purpose") }
        guard let file = form.part("file"), !file.content.isEmpty else {
            throw APIError.invalid("'file' is required, and must not be empty", param: "file")
        }
        guard file.content.count <= maxFileBytes else {
            throw APIError(.contentTooLarge, type: "too_large", message: "a file may hold at most \(maxFileBytes) bytes", param: "file")
        }
        guard String(validating: file.content, as: UTF8.self) != nil else {
            throw APIError.invalid("a batch file must be UTF-8 JSONL", param: "file")
        }
        let stored = StoredFile(
            id: BatchService.newID("file-"), tenant: key.tenant, keyID: key.id, purpose: purpose,
            filename: file.filename ?? "upload.jsonl", bytes: file.content.count, createdAt: .current())
        try await service.store.createFile(stored, content: Array(file.content))
        return FileObject(stored)
    }

    private func listFiles(_ request: Request, _ context: SluiceRequestContext) async throws -> Page<FileObject> {
        let key = try context.require(.read)
        let query = request.uri.queryParameters
        let limit = try Paging.limit(query["limit"], max: 10_000)
        let files = try await batchService.store.files(
            tenant: key.tenant, purpose: query["purpose"].map(String.init), after: query["after"].map(String.init), limit: limit + 1)
        let data = files.prefix(limit).map(FileObject.init)
        return Page(data: data, hasMore: files.count > limit, firstID: data.first?.id, lastID: data.last?.id)
    }

    private func ownedFile(_ context: SluiceRequestContext) async throws -> StoredFile {
        let key = try context.require(.read)
        guard let id = context.parameters.get("id"), let file = try await batchService.store.file(id),
            file.tenant == key.tenant || key.scopes.contains(.admin)
        else { throw APIError(.notFound, type: "not_found", message: "no such file") }
        return file
    }

    private func fileContent(_ context: SluiceRequestContext) async throws -> Response {
        let file = try await ownedFile(context)
        guard let content = try await batchService.store.content(file.id) else {
            throw APIError(.notFound, type: "not_found", message: "no such file")
        }
        return Response(
            status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(bytes: content)))
    }

    private func deleteFile(_ context: SluiceRequestContext) async throws -> Deleted {
        _ = try context.require(.submit)
        let file = try await ownedFile(context)
        _ = try await batchService.store.deleteFile(file.id)
        return Deleted(id: file.id, object: "file", deleted: true)
    }

    // MARK: - Batches

    private func createBatch(_ request: Request, _ context: SluiceRequestContext) async throws -> BatchObject {
        let key = try context.require(.submit)
        let service = try batchService
        // Any Content-Type, as before (OpenAI's endpoint is as lenient): the body is read as JSON.
        let body = try APIJSON.decode(CreateBatch.self, from: Data(buffer: try await request.body.collect(upTo: context.maxUploadSize)))
        let callback = try await callbacks.check(batchCallback: body.callbackURL, key: key)
        let batch = try await batchCall {
            try await service.submitOpenAI(
                key: key, inputFileID: body.inputFileID, endpoint: body.endpoint, completionWindow: body.completionWindow,
                metadata: body.metadata, callbackURL: callback,
                admission: batchAdmission(key), budgeting: batchBudgeting(key))
        }
        return BatchObject(.openAI(.init(batch)))
    }

    private func createMessageBatch(_ request: Request, _ context: SluiceRequestContext) async throws -> BatchObject {
        let key = try context.require(.submit)
        let service = try batchService
        let body = try await request.body.collect(upTo: maxFileBytes)
        // A body that is not a JSON object is the batch service's to refuse; a callback_url that
        // is there must be a URL.
        let named: String?
        do { named = try APIJSON.decode(MessageBatchCallback.self, from: Data(buffer: body)).callbackURL } catch let error as APIError
        where error.param == "callback_url" {
            throw APIError.invalid("'callback_url' must be a URL", param: "callback_url")
        } catch { named = nil }
        let callback = try await callbacks.check(batchCallback: named, key: key)
        let batch = try await batchCall {
            try await service.submitAnthropic(
                key: key, body: Array(buffer: body), callbackURL: callback, admission: batchAdmission(key), budgeting: batchBudgeting(key))
        }
        return BatchObject(.anthropic(.init(batch, base: Self.base(request))))
    }

    /// A batch is admitted as a submit of as many jobs is: the key's lanes, submit rate and cap.
    private func batchAdmission(_ key: APIKey) -> BatchService.Admission {
        { lanes, count in
            for lane in lanes.sorted() { try admission.checkLane(lane, key: key, place: "") }
            let adHoc = lanes.filter { !admission.configuredLanes.contains($0) }
            if !adHoc.isEmpty { try await admission.checkAdHocLanes(Dictionary(uniqueKeysWithValues: adHoc.map { ($0, "") })) }
            try await admission.admit(key, count: count)
        }
    }

    /// A batch's jobs reserve their budgets like a bulk submit: the batch as a whole, refused
    /// with 429 `budget_exceeded` when its estimate does not fit.
    private func batchBudgeting(_ key: APIKey) -> BatchService.Budgeting {
        { specs in
            guard let gate = admission.budgets else { return nil }
            let reservation = try await gate.reserve(specs, key: key)
            let store = gate.store
            return BatchService.BudgetHold(
                keyBudget: gate.keyBudget(key).map { $0.envelopeText(keyPrefix: key.prefix) },
                reserved: reservation.jobs.map { $0.budgets.isEmpty ? nil : Budgets.reservedText(estimate: $0.estimate, at: reservation.at) },
                release: { indices in await reservation.release(indices, in: store) })
        }
    }

    private func ownedBatch(_ context: SluiceRequestContext, api: ProviderKind) async throws -> BatchRecord {
        let key = try context.require(.read)
        guard let id = context.parameters.get("id"), let batch = try await batchService.store.batch(id), batch.api == api.rawValue,
            batch.status != "deleted", batch.tenant == key.tenant || key.scopes.contains(.admin)
        else { throw APIError(.notFound, type: "not_found", message: "no such batch") }
        return batch
    }

    private func showBatch(_ request: Request, _ context: SluiceRequestContext, api: ProviderKind) async throws -> BatchObject {
        BatchObject(BatchDocument(try await ownedBatch(context, api: api), base: Self.base(request)))
    }

    private func cancelBatch(_ request: Request, _ context: SluiceRequestContext, api: ProviderKind) async throws -> BatchObject {
        let key = try context.require(.submit)
        let batch = try await ownedBatch(context, api: api)
        let service = try batchService
        let cancelled = try await batchCall { try await service.cancel(batch.id, key: key) }
        return BatchObject(BatchDocument(cancelled, base: Self.base(request)))
    }

    private func listBatches(_ request: Request, _ context: SluiceRequestContext, api: ProviderKind) async throws -> Page<BatchDocument> {
        let key = try context.require(.read)
        let query = request.uri.queryParameters
        let limit = try Paging.limit(query["limit"], max: 1_000)
        let after = query[api == .anthropic ? "after_id" : "after"].map(String.init)
        let before = api == .anthropic ? query["before_id"].map(String.init) : nil
        let batches = try await batchService.store.batches(tenant: key.tenant, api: api.rawValue, after: after, before: before, limit: limit + 1)
        let base = Self.base(request)
        let data = batches.prefix(limit).map { BatchDocument($0, base: base) }
        return Page(data: data, hasMore: batches.count > limit, firstID: data.first?.id, lastID: data.last?.id)
    }

    private func messageBatchResults(_ context: SluiceRequestContext) async throws -> Response {
        let batch = try await ownedBatch(context, api: .anthropic)
        guard let file = batch.outputFileID, let content = try await batchService.store.content(file) else {
            throw APIError(.notFound, type: "not_found", message: "the batch has not ended yet; its results are not ready")
        }
        return Response(
            status: .ok, headers: [.contentType: "application/binary"], body: .init(byteBuffer: ByteBuffer(bytes: content)))
    }

    private func deleteMessageBatch(_ context: SluiceRequestContext) async throws -> Deleted {
        _ = try context.require(.submit)
        let batch = try await ownedBatch(context, api: .anthropic)
        guard !batch.isOpen else {
            throw APIError(.conflict, type: "conflict", message: "a batch must end (or be cancelled) before it is deleted")
        }
        try await batchService.store.transition(batch.id, to: "deleted", stamp: nil)
        return Deleted(id: batch.id, type: "message_batch_deleted")
    }

    // MARK: - Helpers

    /// The scheme and host the client used (for Anthropic's absolute `results_url`).
    static func base(_ request: Request) -> String? {
        guard let host = request.head.authority else { return nil }
        let scheme = request.headers[HTTPField.Name("X-Forwarded-Proto")!] ?? "http"
        return scheme + "://" + host
    }
}
