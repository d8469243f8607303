import Foundation
import SluiceCore

/// Anthropic's Message Batches API, relative to the provider's base URL (`https://api.anthropic.com`),
/// with the live path's `x-api-key` and `anthropic-version` headers:
///
/// - `upload`: nothing to upload (nil); `create`: `POST /v1/messages/batches` with
///   `{"requests": [{"custom_id", "params"}]}` (`params` the live call's body).
/// - `status`: `GET /v1/messages/batches/{id}`; `results`: the batch's `results_url` when it is on
///   the configured host (the key is never sent elsewhere), else `GET …/{id}/results`.
/// - `candidates`: `GET /v1/messages/batches?limit=100&after_id=…` (newest first). A message batch
///   has no metadata, so the batch made for a record is recognized by time and size: created at
///   or after `since` minus a minute (clock skew) with exactly `count` requests.
/// - `cancel`: `POST /v1/messages/batches/{id}/cancel`.
///
/// Limits: 100,000 requests and 256 MB per batch (refused before anything is sent); custom ids
/// match `^[a-zA-Z0-9_-]{1,64}$` (Sluice job ids do); a results file over
/// `ProviderBatchLimits.maxResultBytes` is `resultTooLarge`.
public final class AnthropicBatchAPI: ProviderBatchAPI {
    let transport: ProviderBatchTransport

    public static let maxRequests = 100_000
    public static let maxInputBytes = 256 << 20

    public var limits: (requests: Int, bytes: Int) { (Self.maxRequests, Self.maxInputBytes) }

    public init(
        settings: ProviderSettings, http: ProviderHTTPClient, limits: ProviderBatchLimits = ProviderBatchLimits(),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        transport = ProviderBatchTransport(settings: settings, http: http, limits: limits, environment: environment)
    }

    /// The create call's body: `{"requests": [{"custom_id", "params"}, …]}`.
    static func createBody(_ requests: [ProviderBatchRequest]) throws(ProviderBatchError) -> [UInt8] {
        try ProviderBatchTransport.checkCount(requests, maxRequests: maxRequests)
        var body = Array(#"{"requests":["#.utf8)
        body.reserveCapacity(requests.reduce(0) { Bounded.add($0, $1.body.count + $1.customID.utf8.count + 32) })
        for (index, request) in requests.enumerated() {
            let id = request.customID.utf8
            guard (1...64).contains(id.count),
                id.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) || $0 == 45 || $0 == 95 })
            else { throw .malformed("a custom_id must match ^[a-zA-Z0-9_-]{1,64}$") }
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body += Array(#"{"custom_id":"#.utf8)
            JSONObjectWriter.appendString(request.customID, to: &body)
            body += Array(#","params":"#.utf8)
            body += request.body
            body.append(UInt8(ascii: "}"))
            guard body.count <= maxInputBytes else { throw .tooLarge("the batch is over \(maxInputBytes) bytes") }
        }
        body += Array("]}".utf8)
        return body
    }

    public func upload(_ requests: [ProviderBatchRequest], tag: String) async throws -> String? {
        _ = try Self.createBody(requests)  // the limits are checked before the send, as OpenAI's upload does
        return nil
    }

    public func create(_ requests: [ProviderBatchRequest], inputFile: String?, tag: String) async throws -> String {
        try await transport.create(Self.createBody(requests))
    }

    public func status(_ batchID: String) async throws -> ProviderBatchStatus {
        try await transport.batch(batchID).status
    }

    public func results(_ batchID: String) async throws -> [(customID: String, result: ProviderBatchLineResult)] {
        try await readResults(batchID).results.map { ($0.customID, $0.result) }
    }

    public func readResults(_ batchID: String) async throws -> ProviderBatchParsing.Lines {
        let batch = try await transport.batch(batchID)
        let cap = transport.limits.maxResultBytes
        let content: [UInt8]
        if let url = batch.resultsURL, transport.isOwn(url) {
            content = try await transport.get(url: url, maxBodyBytes: cap)
        } else {
            content = try await transport.call("GET", transport.batchPath(batchID, "/results"), transfer: true, maxBodyBytes: cap)
        }
        return ProviderBatchParsing.anthropicLines(content)
    }

    public func candidates(tag: String, inputFile: String?, since: UnixMillis, count: Int) async throws -> [String] {
        // The create was sent at `since` and given up at its timeout: the provider made the batch
        // in between (a minute of clock skew either side), never later.
        let oldest = since.value - 60_000
        let newest = Bounded.add(since.value, Bounded.add(transport.limits.transferTimeout.milliseconds, 60_000))
        return try await transport.findBatches(oldest: oldest) { batch in
            // A batch whose creation time cannot be read might be ours: better a candidate too many.
            let inWindow = batch.createdAt.map { (oldest...newest).contains($0.value) } ?? true
            return inWindow && batch.total == count
        }
    }

    public func cancel(_ batchID: String) async throws {
        try await transport.cancel(batchID)
    }
}
