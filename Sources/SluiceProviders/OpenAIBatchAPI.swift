import Foundation
import SluiceCore

/// OpenAI's Files + Batches API (and any server that speaks it, such as the mock), relative to the
/// provider's base URL (`https://api.openai.com/v1`):
///
/// - `upload`: `POST /files`, multipart (`purpose=batch`, `file` the JSONL input, one line per
///   request: `{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}`; the url
///   is the live call's endpoint, so embeddings batch too, one endpoint per batch).
/// - `create`: `POST /batches` (`input_file_id`, `endpoint`, `completion_window: "24h"`,
///   `metadata: {"sluice_batch": tag}`).
/// - `status`: `GET /batches/{id}`; `results`: `GET /files/{id}/content` of the output and the
///   error file; `candidates`: `GET /batches?limit=100&after=…` (newest first) until a batch
///   older than `since` minus a minute; `cancel`: `POST /batches/{id}/cancel`.
///
/// Limits: 50,000 requests and 200 MB of input per batch (refused before anything is sent); a
/// result file over `ProviderBatchLimits.maxResultBytes` is `resultTooLarge`.
public final class OpenAIBatchAPI: ProviderBatchAPI {
    let transport: ProviderBatchTransport

    public static let maxRequests = 50_000
    public static let maxInputBytes = 200 << 20

    public var limits: (requests: Int, bytes: Int) { (Self.maxRequests, Self.maxInputBytes) }

    public init(
        settings: ProviderSettings, http: ProviderHTTPClient, limits: ProviderBatchLimits = ProviderBatchLimits(),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        transport = ProviderBatchTransport(settings: settings, http: http, limits: limits, environment: environment)
    }

    /// The batch endpoint of a live call's path: `/v1/…` as it is, a path relative to a base URL
    /// ending in `/v1` (`/chat/completions`) under `/v1`.
    static func endpoint(_ path: String) -> String {
        let path = path.hasPrefix("/") ? path : "/" + path
        return path.hasPrefix("/v1/") ? path : "/v1" + path
    }

    /// Appends the JSONL input file to `out`: one line per request, in order. At most
    /// `maxRequests` requests and `maxInputBytes` bytes of file, one endpoint.
    static func appendInputFile(_ requests: [ProviderBatchRequest], to out: inout [UInt8]) throws(ProviderBatchError) {
        try ProviderBatchTransport.checkCount(requests, maxRequests: maxRequests)
        let endpoint = Self.endpoint(requests[0].path)
        let start = out.count
        out.reserveCapacity(start + requests.reduce(0) { Bounded.add($0, $1.body.count + $1.customID.utf8.count + 80) })
        for request in requests {
            guard Self.endpoint(request.path) == endpoint else { throw .malformed("one endpoint per batch (\(endpoint) and \(Self.endpoint(request.path)))") }
            guard (1...256).contains(request.customID.utf8.count) else { throw .malformed("a custom_id of 1...256 bytes") }
            out += Array(#"{"custom_id":"#.utf8)
            JSONObjectWriter.appendString(request.customID, to: &out)
            out += Array(#","method":"POST","url":"#.utf8)
            JSONObjectWriter.appendString(endpoint, to: &out)
            out += Array(#","body":"#.utf8)
            out += ProviderBatchTransport.oneLine(request.body)
            out += Array("}\n".utf8)
            guard out.count - start <= maxInputBytes else { throw .tooLarge("the input file is over \(maxInputBytes) bytes") }
        }
    }

    /// The multipart body of `POST /files` (`purpose=batch`, `file` the JSONL input, written
    /// straight into it: the upload holds no second copy of the file) and its boundary (random;
    /// it cannot occur in the file, which has no CR).
    static func multipart(_ requests: [ProviderBatchRequest], filename: String) throws(ProviderBatchError) -> (body: [UInt8], boundary: String) {
        // 38 characters (RFC 2046 allows 70): "sluice-" and 128 random bits, as 32 hex digits.
        let boundary = "sluice-" + (0..<2).map { _ in
            let hex = String(UInt64.random(in: 0...UInt64.max), radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
        var body = Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n".utf8)
        body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(filename)\"\r\n".utf8)
        body += Array("Content-Type: application/jsonl\r\n\r\n".utf8)
        try appendInputFile(requests, to: &body)
        body += Array("\r\n--\(boundary)--\r\n".utf8)
        return (body, boundary)
    }

    public func upload(_ requests: [ProviderBatchRequest], tag: String) async throws -> String? {
        let safeTag = String(tag.utf8.prefix(64).map { byte -> Character in
            (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 45 || byte == 95 ? Character(Unicode.Scalar(byte)) : "_"
        })
        let (body, boundary) = try Self.multipart(requests, filename: "sluice-\(safeTag).jsonl")
        let answer = try await transport.call("POST", "/files", body: body, contentType: "multipart/form-data; boundary=\(boundary)", transfer: true)
        guard let id = answer.withUnsafeBufferPointer({ bytes in
            ProviderBatchParsing.fields(bytes, 0..<bytes.count).flatMap { ProviderBatchParsing.string(bytes, $0["id"]) }
        }), !id.isEmpty else { throw ProviderBatchError.malformed("a file object without an id") }
        return id
    }

    public func create(_ requests: [ProviderBatchRequest], inputFile: String?, tag: String) async throws -> String {
        guard let inputFile else { throw ProviderBatchError.malformed("an OpenAI batch needs its uploaded input file") }
        var body = JSONObjectWriter()
        body.string("input_file_id", inputFile)
        body.string("endpoint", Self.endpoint(requests.first?.path ?? "/v1/chat/completions"))
        body.string("completion_window", "24h")
        body.object("metadata") { $0.string("sluice_batch", tag) }
        return try await transport.create(body.finished())
    }

    public func status(_ batchID: String) async throws -> ProviderBatchStatus {
        try await transport.batch(batchID).status
    }

    public func results(_ batchID: String) async throws -> [(customID: String, result: ProviderBatchLineResult)] {
        try await readResults(batchID).results.map { ($0.customID, $0.result) }
    }

    /// The output file's and the error file's lines, and how many were skipped. A request in
    /// neither file was not run (the batch expired or was cancelled first).
    public func readResults(_ batchID: String) async throws -> ProviderBatchParsing.Lines {
        let batch = try await transport.batch(batchID)
        var lines = ProviderBatchParsing.Lines()
        for file in [batch.outputFileID, batch.errorFileID].compactMap({ $0 }) where !file.isEmpty {
            let content = try await transport.call(
                "GET", "/files/" + ProviderBatchTransport.segment(file) + "/content", transfer: true,
                maxBodyBytes: transport.limits.maxResultBytes)
            let read = ProviderBatchParsing.openAILines(content)
            lines.results += read.results
            lines.skipped += read.skipped
        }
        return lines
    }

    public func candidates(tag: String, inputFile: String?, since: UnixMillis, count: Int) async throws -> [String] {
        let oldest = since.value - 60_000
        // Newest first: once a page reaches past the oldest time that could be ours, stop.
        return try await transport.findBatches(oldest: oldest) { $0.tag == tag || (inputFile != nil && $0.inputFileID == inputFile) }
    }

    public func cancel(_ batchID: String) async throws {
        try await transport.cancel(batchID)
    }
}
