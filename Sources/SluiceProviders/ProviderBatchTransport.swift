import Foundation
import SluiceCore

/// How the batch clients reach a provider: the live path's HTTP client (its pools, TLS and
/// connect timeout), the live path's URL and headers (`ProviderAdapter.request`: the API key from
/// the environment at each call, `anthropic-version`; the key is a secret header, never in an
/// error or a log), and the batch limits' own timeouts and body caps.
struct ProviderBatchTransport: Sendable {
    let settings: ProviderSettings
    let http: ProviderHTTPClient
    let limits: ProviderBatchLimits
    let environment: [String: String]

    /// The answers to status, list and cancel calls are small: a larger one is refused.
    static let maxObjectBytes = 8 << 20

    /// `method` to `path` (relative to the base URL, as the live path builds it); the answer's
    /// body when its status is 2xx. Throws `ProviderBatchError` (or `CancellationError`).
    func call(
        _ method: String, _ path: String, body: [UInt8] = [], contentType: String? = nil, transfer: Bool = false, maxBodyBytes: Int? = nil
    ) async throws -> [UInt8] {
        try await call(method, url: nil, path: path, body: body, contentType: contentType, transfer: transfer, maxBodyBytes: maxBodyBytes)
    }

    /// Whether the provider speaks Anthropic's Message Batches (by its kind), else OpenAI's Batches.
    var anthropic: Bool { settings.kind == .anthropic }

    /// The batches' collection, relative to the base URL: `/v1/messages/batches` (Anthropic),
    /// `/batches` (OpenAI, whose base URL ends in `/v1`).
    var batchesPath: String { anthropic ? "/v1/messages/batches" : "/batches" }

    /// The path of one batch (`id` checked as a plain segment) and `suffix` (`/cancel`, `/results`).
    func batchPath(_ id: String, _ suffix: String = "") throws(ProviderBatchError) -> String {
        batchesPath + "/" + (try Self.segment(id)) + suffix
    }

    /// A batch object (the answer to a create or a status call), read as the provider writes it.
    func batch(from answer: [UInt8]) throws(ProviderBatchError) -> ProviderBatchParsing.Batch {
        guard let batch = anthropic ? ProviderBatchParsing.anthropicBatch(answer) : ProviderBatchParsing.openAIBatch(answer) else {
            throw .malformed(anthropic ? "a message batch without an id" : "a batch object without an id")
        }
        return batch
    }

    /// Creates a batch (`body` the create call's JSON) and returns its id.
    func create(_ body: [UInt8]) async throws -> String {
        try batch(from: await call("POST", batchesPath, body: body, transfer: true)).id
    }

    /// The batch object of `id`.
    func batch(_ id: String) async throws -> ProviderBatchParsing.Batch {
        try batch(from: await call("GET", batchPath(id)))
    }

    /// Asks the provider to cancel batch `id`.
    func cancel(_ id: String) async throws {
        _ = try await call("POST", batchPath(id, "/cancel"))
    }

    /// The count and size checks both providers' inputs start with: at least one request, at most `maxRequests`.
    static func checkCount(_ requests: [ProviderBatchRequest], maxRequests: Int) throws(ProviderBatchError) {
        guard !requests.isEmpty else { throw .malformed("a batch needs at least one request") }
        guard requests.count <= maxRequests else { throw .tooLarge("\(requests.count) requests, at most \(maxRequests)") }
    }

    /// The most list pages read when looking for a batch again (100 batches a page).
    static let maxCandidatePages = 20

    /// The ids of the batches in the provider's list (`GET batchesPath?limit=100`, then the page
    /// after the last id seen) that `matches`, newest first, until a page reaches back past
    /// `oldest` (ms), the list ends or `maxCandidatePages` were read.
    func findBatches(oldest: Int64, matches: (ProviderBatchParsing.Batch) -> Bool) async throws -> [String] {
        var found: [String] = []
        var after: String? = nil
        let afterName = anthropic ? "&after_id=" : "&after="
        for _ in 0..<Self.maxCandidatePages {
            let list = batchesPath + "?limit=100" + (after.map { afterName + Self.query($0) } ?? "")
            guard let page = ProviderBatchParsing.page(try await call("GET", list), anthropic: anthropic) else {
                throw ProviderBatchError.malformed("a batch list without data")
            }
            found += page.batches.filter(matches).map(\.id)
            let reachedOld = page.batches.contains { ($0.createdAt?.value ?? Int64.max) < oldest }
            guard page.hasMore, !reachedOld, let last = page.lastID, last != after else { break }
            after = last
        }
        return found
    }

    /// A GET of an absolute `url` the provider gave (Anthropic's `results_url`), with the same
    /// headers: the caller checks first that it is on the configured base URL's host.
    func get(url: String, maxBodyBytes: Int) async throws -> [UInt8] {
        try await call("GET", url: url, path: "/", body: [], contentType: nil, transfer: true, maxBodyBytes: maxBodyBytes)
    }

    private func call(
        _ method: String, url: String?, path: String, body: [UInt8], contentType: String?, transfer: Bool, maxBodyBytes: Int?
    ) async throws -> [UInt8] {
        var request: ProviderRequest
        do {
            request = try ProviderAdapter.request(settings, path: path, body: body, environment: environment)
        } catch {
            throw ProviderBatchError.missingSecret(error.description)
        }
        if let url { request.url = url }
        request.headers.removeAll { $0.name == "Content-Type" }
        if method != "GET" {
            request.headers.append(.init(name: "Content-Type", value: contentType ?? "application/json", secret: false))
        }
        let cap = maxBodyBytes ?? Self.maxObjectBytes
        let response: ProviderResponse
        do {
            response = try await http.send(
                method: method, url: request.url, headers: request.headers, body: body,
                timeout: transfer ? limits.transferTimeout : limits.callTimeout, maxBodyBytes: cap)
        } catch let error as ProviderHTTPError {
            if case .bodyTooLarge(let limit) = error { throw ProviderBatchError.resultTooLarge(limit: limit) }
            throw ProviderBatchError.transport(error.description)
        }
        guard (200..<300).contains(response.status) else {
            throw ProviderBatchError.http(status: response.status, message: ProviderAdapter.errorText(response.body) ?? "")
        }
        return response.body
    }

    /// Whether `url` is on the configured base URL's scheme, host and port (where the key may go).
    func isOwn(_ url: String) -> Bool {
        guard let own = try? ProviderHTTPTarget(settings.baseURL), let other = try? ProviderHTTPTarget(url) else { return false }
        return own.key == other.key && other.basicAuthorization == nil
    }

    /// A query parameter's value, percent-encoded (ids are plain, but a hostile one must not add a parameter).
    static func query(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                out += "%" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0xF)])
            }
        }
        return out
    }

    /// A path segment: an id the provider gave, refused when it could leave its segment.
    static func segment(_ id: String) throws(ProviderBatchError) -> String {
        guard (1...256).contains(id.utf8.count),
            id.utf8.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 45 || $0 == 95 || $0 == 46 }),
            id != ".", id != ".."
        else { throw .malformed("an id that is not a plain token") }
        return id
    }

    /// A provider-native body as one JSONL line: its CR and LF bytes (whitespace between tokens
    /// in valid JSON: a string cannot hold them raw) become spaces.
    static func oneLine(_ body: [UInt8]) -> [UInt8] {
        guard body.contains(where: { $0 == 10 || $0 == 13 }) else { return body }
        return body.map { $0 == 10 || $0 == 13 ? 32 : $0 }
    }
}
