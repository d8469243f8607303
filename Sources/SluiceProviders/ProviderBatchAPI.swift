import Foundation
import SluiceCore

/// One request of a provider batch: `customID` is the Sluice job id; `body` is the provider-native
/// request body, exactly what the live call would send (translated, model set: built with the same
/// code the live path uses, ProviderAdapter/Translation). `path` is the endpoint the live call
/// would POST to (OpenAI: `/v1/chat/completions`, `/v1/embeddings`, `/v1/completions`; a path
/// relative to an OpenAI base URL ending in `/v1`, such as `/chat/completions`, is taken as
/// `/v1/chat/completions`); Anthropic has only messages and ignores it.
public struct ProviderBatchRequest: Sendable, Hashable {
    public var customID: String
    public var body: [UInt8]
    public var path: String

    public init(customID: String, body: [UInt8], path: String = "/v1/chat/completions") {
        self.customID = customID
        self.body = body
        self.path = path
    }
}

/// Where a provider batch is.
///
/// OpenAI's `validating`, `in_progress`, `finalizing` and `cancelling` are `inProgress`;
/// `completed`, `expired` and `cancelled` are `ended` (an expired or cancelled batch still has
/// output for the lines it ran; a line in neither the output nor the error file was not run and
/// reads as `expired`, or `cancelled` for a cancelled batch); `failed` (the input was refused:
/// validation errors) is `failed`. Anthropic's `in_progress` and `canceling` are `inProgress`,
/// `ended` is `ended`. A state this client does not know is `inProgress` (polled again, never
/// taken for an end).
public enum ProviderBatchStatus: Sendable, Hashable {
    /// Not ended: `done` of `total` requests have an answer so far (both clamped into 0...10^9).
    case inProgress(done: Int, total: Int)
    /// The results (and errors) can be read now.
    case ended
    /// The batch as a whole was refused (OpenAI `failed`: validation errors, summarized).
    case failed(String)
}

/// What became of one request of an ended batch.
public enum ProviderBatchLineResult: Sendable, Hashable {
    /// The provider-native response body (to translate to the client's shape as the live path does).
    case succeeded(body: [UInt8])
    /// The provider's error for that line: OpenAI's `response.status_code` and `response.body`
    /// (or the line's `error` object, with status 0); Anthropic's `error` object, with the HTTP
    /// status its error type stands for (400 `invalid_request_error`, 429 `rate_limit_error`,
    /// 500 `api_error`, 529 `overloaded_error`, …; 0 when the type is unknown).
    case errored(status: Int, body: [UInt8])
    /// Not run within the window.
    case expired
    /// Not run because the batch was cancelled.
    case cancelled
}

/// A provider's batch API: OpenAI Files + Batches, Anthropic Message Batches.
///
/// Every answer from the provider is hostile input: status objects and result lines are parsed
/// with bounds (a line over `ProviderBatchLimits.maxLineBytes` or not valid JSON is skipped and
/// counted, numbers are clamped, unknown fields are ignored), and a result body past
/// `maxResultBytes` is an error, never an unbounded allocation.
public protocol ProviderBatchAPI: Sendable {
    /// The provider's limits for one batch (requests, bytes of the input).
    var limits: (requests: Int, bytes: Int) { get }
    /// OpenAI: uploads the JSONL input (purpose=batch) and returns the file id. Anthropic: nil (no file).
    func upload(_ requests: [ProviderBatchRequest], tag: String) async throws -> String?
    /// Creates the batch — this is the send — and returns the provider's batch id. `tag` is Sluice's
    /// record id (OpenAI: in `metadata.sluice_batch`).
    func create(_ requests: [ProviderBatchRequest], inputFile: String?, tag: String) async throws -> String
    /// Where the batch is.
    func status(_ batchID: String) async throws -> ProviderBatchStatus
    /// Every line of an ended batch (output and error files for OpenAI; results for Anthropic), by
    /// custom id. A line that could not be read is left out (and counted in the log); a request
    /// of the batch missing from the results is the caller's to treat as expired.
    func results(_ batchID: String) async throws -> [(customID: String, result: ProviderBatchLineResult)]
    /// `results`, with how many lines could not be read (to log): the OpenAI and Anthropic
    /// clients implement it; another conformer gets a default that reports none skipped.
    func readResults(_ batchID: String) async throws -> ProviderBatchParsing.Lines
    /// After a crash between "create sent" and "id recorded": the provider batches that may be the
    /// one created for `tag` (OpenAI: metadata.sluice_batch == tag, or input_file_id == inputFile;
    /// Anthropic, which has no metadata: batches created at or after `since` (minus a minute of clock
    /// skew) with `count` requests). Empty: none was created, sending again is safe.
    func candidates(tag: String, inputFile: String?, since: UnixMillis, count: Int) async throws -> [String]
    /// Asks the provider to cancel the batch (it ends later, with what ran by then).
    func cancel(_ batchID: String) async throws
}

extension ProviderBatchAPI {
    public func readResults(_ batchID: String) async throws -> ProviderBatchParsing.Lines {
        ProviderBatchParsing.Lines(results: try await results(batchID).map { ProviderBatchParsing.Line(customID: $0.customID, result: $0.result) })
    }
}

/// Why a batch call failed. The descriptions carry no key or header.
public enum ProviderBatchError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The provider answered with an error status (its message, credentials masked, at most 1,000 characters).
    case http(status: Int, message: String)
    /// The answer was not the object expected (a missing id, not JSON).
    case malformed(String)
    /// The input is over the provider's limits (requests or bytes).
    case tooLarge(String)
    /// A result or output file over the size cap.
    case resultTooLarge(limit: Int)
    /// No answer (connection, timeout, TLS): the transport's description.
    case transport(String)
    /// The API key's environment variable is not set.
    case missingSecret(String)

    public var description: String {
        switch self {
        case .http(let status, let message): "provider batch API: HTTP \(status): \(message)"
        case .malformed(let why): "provider batch API: unexpected answer: \(why)"
        case .tooLarge(let why): "provider batch API: batch too large: \(why)"
        case .resultTooLarge(let limit): "provider batch API: results over \(limit) bytes"
        case .transport(let why): "provider batch API: \(why)"
        case .missingSecret(let why): "provider batch API: \(why)"
        }
    }
}

/// The batch APIs' size and time limits.
public struct ProviderBatchLimits: Sendable, Hashable {
    /// The largest result (or output/error) file read, in bytes; larger is `resultTooLarge`.
    public var maxResultBytes: Int
    /// How long an upload, a create, or a result download may take.
    public var transferTimeout: Duration
    /// How long a status, list or cancel call may take.
    public var callTimeout: Duration

    /// A result line longer than this is skipped (and counted), not parsed.
    public static let maxLineBytes = 16 << 20

    public init(maxResultBytes: Int = 1 << 30, transferTimeout: Duration = .seconds(600), callTimeout: Duration = .seconds(60)) {
        self.maxResultBytes = Bounded.clamp(maxResultBytes, to: 1...(4 << 30))
        self.transferTimeout = transferTimeout
        self.callTimeout = callTimeout
    }
}

/// The batch API of a provider, or nil when its kind has none (only openai and anthropic kinds).
public enum ProviderBatchAPIs {
    /// `http` is the client the live path uses (same pools, TLS and timeouts); `environment` holds
    /// the API key's variable, read at each call as the live path does.
    public static func make(
        _ settings: ProviderSettings, http: ProviderHTTPClient, limits: ProviderBatchLimits = ProviderBatchLimits(),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> (any ProviderBatchAPI)? {
        switch settings.kind {
        case .openai: OpenAIBatchAPI(settings: settings, http: http, limits: limits, environment: environment)
        case .anthropic: AnthropicBatchAPI(settings: settings, http: http, limits: limits, environment: environment)
        case .huggingface: nil
        }
    }
}
