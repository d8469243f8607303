import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A client of Sluice's HTTP API: the requests the CLI makes, with the API's errors as values.
///
/// Every method throws `ClientError`: `.unreachable` when no HTTP answer came, `.api` for an
/// error answer (its status and the `{"error": {type, message, param}}` body).
public struct SluiceClient: Sendable {
    /// The server, e.g. `http://127.0.0.1:8080` (no trailing slash).
    public let baseURL: String
    let apiKey: String?
    let http: HTTPClient

    public init(url: String, apiKey: String?, http: HTTPClient = .shared) {
        var base = url
        while base.hasSuffix("/") { base.removeLast() }
        baseURL = base
        self.apiKey = apiKey
        self.http = http
    }

    /// Runs `body` with a client that owns its HTTP client, and shuts that down afterwards.
    /// Connection failures are not retried (a CLI should say at once that nothing answers).
    public static func with<T>(
        url: String, apiKey: String?, maxConnections: Int = 64, _ body: (SluiceClient) async throws -> T
    ) async throws -> T {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = maxConnections
        configuration.timeout.connect = .seconds(10)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let result = try await body(SluiceClient(url: url, apiKey: apiKey, http: http))
            try? await http.shutdown()
            return result
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    /// An answer: its status, headers and body as it came; `decode` reads it as a type.
    public struct Reply: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var bytes: Data

        /// The body as `T`; an answer that is not one is `ClientError.unexpectedAnswer`.
        public func decode<T: Decodable>(_ type: T.Type) throws(ClientError) -> T {
            do { return try JSONDecoder().decode(T.self, from: bytes) } catch {
                throw .unexpectedAnswer(String(decoding: bytes.prefix(200), as: UTF8.self))
            }
        }
    }

    /// A typed answer, and its JSON as it came (what `--json` prints).
    public struct Answer<Value: Sendable>: Sendable {
        public var value: Value
        public var json: Data
    }

    /// Submits one job (a `POST /v1/jobs` body).
    public func submit(_ job: Data, idempotencyKey: String? = nil) async throws(ClientError) -> Answer<Accepted> {
        var headers: [(String, String)] = []
        if let idempotencyKey { headers.append(("Idempotency-Key", idempotencyKey)) }
        return try await call(.POST, "/v1/jobs", body: job, headers: headers).answer(Accepted.self)
    }

    /// Submits JSONL, all or nothing; returns the `data` entries (`id`, `created`) in order.
    public func submitBulk(jsonLines: Data) async throws(ClientError) -> [Accepted] {
        try await call(.POST, "/v1/jobs/bulk", body: jsonLines, contentType: "application/jsonl").decode(List<Accepted>.self).data
    }

    /// A job; with `wait`, long-polls up to that many seconds (at most 60) for it to finish.
    public func job(_ id: String, wait: Int? = nil) async throws(ClientError) -> Answer<JobSummary> {
        let query = wait.map { "?wait=\($0)" } ?? ""
        return try await call(.GET, "/v1/jobs/\(try Self.pathSegment(id))\(query)", timeout: .seconds(Int64(min(max(wait ?? 0, 0), 60)) + 30))
            .answer(JobSummary.self)
    }

    public func cancel(_ id: String) async throws(ClientError) -> Answer<JobSummary> {
        try await call(.POST, "/v1/jobs/\(try Self.pathSegment(id))/cancel").answer(JobSummary.self)
    }

    /// Retries a dead or failed job as a new job (`POST /v1/jobs/{id}/retry`): the new job's id;
    /// a second retry of the same job answers the same new job.
    public func retry(_ id: String) async throws(ClientError) -> Answer<Accepted> {
        try await call(.POST, "/v1/jobs/\(try Self.pathSegment(id))/retry").answer(Accepted.self)
    }

    /// A job's timeline; `json` is the whole answer (`{"data": [...], ...}`).
    public func events(_ id: String) async throws(ClientError) -> Answer<[JobEvent]> {
        let reply = try await call(.GET, "/v1/jobs/\(try Self.pathSegment(id))/events")
        return Answer(value: try reply.decode(List<JobEvent>.self).data, json: reply.bytes)
    }

    /// Every lane's counts; `json` is the whole answer (`{"data": [...], ...}`).
    public func queues() async throws(ClientError) -> Answer<[QueueRow]> {
        let reply = try await call(.GET, "/v1/queues")
        return Answer(value: try reply.decode(List<QueueRow>.self).data, json: reply.bytes)
    }

    /// One request; an answer of 400 or more becomes `ClientError.api`.
    public func call(
        _ method: HTTPMethod, _ path: String, body: Data? = nil, contentType: String = "application/json",
        headers: [(String, String)] = [], timeout: TimeAmount = .seconds(60)
    ) async throws(ClientError) -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        request.headers.add(contentsOf: headers)
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let status: Int
        let responseHeaders: HTTPHeaders
        let bytes: ByteBuffer
        do {
            let response = try await http.execute(request, timeout: timeout)
            status = Int(response.status.code)
            responseHeaders = response.headers
            bytes = try await response.body.collect(upTo: 512 << 20)
        } catch {
            throw .unreachable(url: baseURL, reason: Self.describe(error))
        }
        let data = Data(bytes.readableBytesView)
        guard status < 400 else {
            let error = (try? JSONDecoder().decode(ErrorBody.self, from: data))?.error
            throw .api(
                status: status, type: error?.type ?? "http_\(status)",
                message: error?.message ?? String(decoding: data.prefix(200), as: UTF8.self),
                param: error?.param, retryAfter: responseHeaders.first(name: "Retry-After").flatMap { Int($0) })
        }
        return Reply(status: status, headers: responseHeaders, bytes: data)
    }

    /// A job id as one path segment: refuses anything that would change the path.
    static func pathSegment(_ id: String) throws(ClientError) -> String {
        guard !id.isEmpty, id.utf8.allSatisfy({ $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "_") }) else {
            throw .invalidArgument("'\(id)' is not a job id (job_…)")
        }
        return id
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError { return "\(error)" }
        return String(describing: error)
    }
}

/// Why a client call failed.
public enum ClientError: Error, Sendable, CustomStringConvertible {
    /// No HTTP answer: connection refused, DNS, timeout.
    case unreachable(url: String, reason: String)
    /// An error answer from the API.
    case api(status: Int, type: String, message: String, param: String?, retryAfter: Int?)
    /// An argument the client refuses before sending.
    case invalidArgument(String)
    /// A success answer that is not what the API sends (its first bytes).
    case unexpectedAnswer(String)

    public var description: String {
        switch self {
        case .unreachable(let url, let reason): "cannot reach Sluice at \(url): \(reason)"
        case .api(let status, let type, let message, let param, let retryAfter):
            "HTTP \(status) \(type): \(message)" + (param.map { " (param: \($0))" } ?? "")
                + (retryAfter.map { "; retry after \($0) s" } ?? "")
        case .invalidArgument(let message): message
        case .unexpectedAnswer(let head): "unexpected answer from Sluice: \(head)"
        }
    }
}

extension SluiceClient.Reply {
    fileprivate func answer<T: Decodable & Sendable>(_ type: T.Type) throws(ClientError) -> SluiceClient.Answer<T> {
        SluiceClient.Answer(value: try decode(T.self), json: bytes)
    }
}

extension UInt8 {
    fileprivate var isASCIIAlphanumeric: Bool {
        (48...57).contains(self) || (65...90).contains(self) || (97...122).contains(self)
    }
}
