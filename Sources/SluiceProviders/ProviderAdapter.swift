import Foundation
import SluiceCore

/// One provider as configured: where it is, how to authenticate, how long to wait.
public struct ProviderSettings: Sendable, Hashable {
    public var name: String
    public var kind: ProviderKind
    /// e.g. `https://api.openai.com/v1`, `https://api.anthropic.com`, `http://127.0.0.1:8000/v1`.
    public var baseURL: String
    /// The environment variable that holds the API key (the key itself is never in config or logs).
    public var apiKeyEnvironment: String?
    public var timeout: Duration
    /// Anthropic's API version header.
    public var anthropicVersion: String

    public init(
        name: String, kind: ProviderKind, baseURL: String, apiKeyEnvironment: String? = nil,
        timeout: Duration = .seconds(600), anthropicVersion: String = "2023-06-01"
    ) {
        self.name = name
        self.kind = kind
        self.baseURL = baseURL
        self.apiKeyEnvironment = apiKeyEnvironment
        self.timeout = timeout
        self.anthropicVersion = anthropicVersion
    }
}

/// A call to make: the job's request body, unchanged, with the provider's URL and headers.
public struct ProviderRequest: Sendable, Hashable {
    public var url: String
    public var headers: [Header]
    public var body: [UInt8]
    public var timeout: Duration

    public struct Header: Sendable, Hashable {
        public var name: String
        public var value: String
        /// Whether the value is a secret (never logged).
        public var secret: Bool
    }

    /// The headers, with secrets masked: for logs.
    public var redactedHeaders: [(String, String)] {
        headers.map { ($0.name, $0.secret ? "[redacted]" : $0.value) }
    }
}

/// A provider's answer, as received.
public struct ProviderResponse: Sendable, Hashable {
    public var status: Int
    public var headers: [ProviderRequest.Header]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8]) {
        self.status = status
        self.headers = headers.map { ProviderRequest.Header(name: $0.name, value: $0.value, secret: false) }
        self.body = body
    }

    public var headerPairs: [(name: String, value: String)] { headers.map { ($0.name, $0.value) } }
}

/// Tokens used by one call.
public struct Usage: Sendable, Hashable {
    public var input: Int
    public var output: Int

    public init(input: Int, output: Int) {
        self.input = input
        self.output = output
    }
}

/// What became of one call.
public enum CallOutcome: Sendable, Hashable {
    case success(Usage?)
    /// 429 (or a rate-limit error body): the lane should pause for all workers.
    case rateLimited(RateLimitInfo, message: String)
    /// Worth retrying: 5xx, 408, timeouts, resets, refused connections.
    case retryable(String)
    /// The prompt and `max_tokens` exceed the model's context: retrying the same request cannot help.
    case contextLength(String)
    /// Any other 4xx: the request itself is wrong.
    case fatal(String)
}

/// Builds calls and reads answers for each provider. Pure: no I/O, so it is unit-tested on
/// real response samples.
public enum ProviderAdapter {
    /// The call for a job of this provider: POST `path` (for OpenAI-compatible servers relative
    /// to the base URL, e.g. `/chat/completions`) with the job's body unchanged.
    public static func request(
        _ settings: ProviderSettings, path: String, body: [UInt8], idempotencyKey: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ProviderError) -> ProviderRequest {
        var base = settings.baseURL
        while base.hasSuffix("/") { base.removeLast() }
        var headers = [ProviderRequest.Header(name: "Content-Type", value: "application/json", secret: false)]
        var key: String? = nil
        if let variable = settings.apiKeyEnvironment {
            guard let value = environment[variable], !value.isEmpty else {
                throw .missingSecret(provider: settings.name, variable: variable)
            }
            key = value
        }
        switch settings.kind {
        case .openai, .huggingface:
            if let key { headers.append(.init(name: "Authorization", value: "Bearer \(key)", secret: true)) }
        case .anthropic:
            if let key { headers.append(.init(name: "x-api-key", value: key, secret: true)) }
            headers.append(.init(name: "anthropic-version", value: settings.anthropicVersion, secret: false))
        }
        if let idempotencyKey {
            headers.append(.init(name: "Idempotency-Key", value: idempotencyKey, secret: false))
            headers.append(.init(name: "X-Sluice-Job", value: idempotencyKey, secret: false))
        }
        return ProviderRequest(
            url: base + (path.hasPrefix("/") ? path : "/" + path), headers: headers, body: body, timeout: settings.timeout)
    }

    /// The default path for a provider kind's main endpoint.
    public static func defaultPath(_ kind: ProviderKind, model: String?) -> String {
        switch kind {
        case .openai: "/chat/completions"
        case .anthropic: "/v1/messages"
        case .huggingface: "/models/" + (model ?? "")
        }
    }

    /// Classifies an answer. `now` is its arrival time (for absolute reset times).
    public static func classify(_ response: ProviderResponse, now: Date = Date()) -> CallOutcome {
        let status = response.status
        if (200..<300).contains(status) { return .success(usage(response.body)) }  // the hot path: no other parsing
        let error = errorText(response.body)
        switch status {
        case 429:
            return .rateLimited(RateLimitInfo(headers: response.headerPairs, now: now), message: error ?? "HTTP 429")
        case 408, 409, 425, 500..<600:
            // Anthropic's 529 (overloaded) is a capacity problem, not a quota: retry with backoff.
            return .retryable("HTTP \(status)" + (error.map { ": \($0)" } ?? ""))
        case 413:
            return .contextLength("HTTP 413" + (error.map { ": \($0)" } ?? ""))
        case 400..<500:
            if let error, isContextLength(error, body: response.body) { return .contextLength("HTTP \(status): \(error)") }
            return .fatal("HTTP \(status)" + (error.map { ": \($0)" } ?? ""))
        default:
            return .retryable("HTTP \(status)")
        }
    }

    /// Classifies a failure to get an answer at all: timeouts, resets, refused connections are
    /// worth retrying; a malformed URL is not.
    public static func classify(transportError description: String) -> CallOutcome {
        let text = description.lowercased()
        if text.contains("invalid url") || text.contains("invalidurl") || text.contains("unsupported scheme")
            || text.contains("unsupportedscheme") || text.contains("malformed")
        {
            return .fatal(description)
        }
        return .retryable(description)
    }

    /// The tokens of a successful answer: OpenAI's `usage.prompt_tokens`/`completion_tokens`,
    /// Anthropic's `usage.input_tokens`/`output_tokens` (plus its cache counts), TGI's
    /// `details.generated_tokens`; only the answer's own top-level `usage` (or `details`) counts,
    /// never a like-named field nested in the content. Each count is clamped into
    /// `0...Bounded.maxTokens` (and their sums saturate), whatever the provider says: a count
    /// near `Int64.max` cannot overflow a sum here or downstream.
    public static func usage(_ body: [UInt8]) -> Usage? {
        // The strict scanner finds the top-level member (no decoding of the rest of a large
        // body), then reads that small object's counts; no Foundation on this path (it runs on
        // every successful call).
        guard let (name, object) = topLevelUsage(body) else { return nil }
        let counts = tokenCounts(object)
        if name == "details" {
            return counts["generated_tokens"].map { Usage(input: 0, output: $0) }
        }
        if let input = counts["prompt_tokens"] {
            return Usage(input: input, output: counts["completion_tokens"] ?? 0)
        }
        if let input = counts["input_tokens"] {
            let cached = Bounded.add(counts["cache_creation_input_tokens"] ?? 0, counts["cache_read_input_tokens"] ?? 0)
            return Usage(input: Bounded.tokens(Bounded.add(input, cached)), output: counts["output_tokens"] ?? 0)
        }
        return nil
    }

    /// The names a usage object's counts may have (OpenAI's, Anthropic's, TGI's).
    static let tokenCountNames: Set<String> = [
        "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "cache_creation_input_tokens",
        "cache_read_input_tokens", "generated_tokens",
    ]

    /// The numeric members of a usage object that are token counts, each clamped into
    /// `0...Bounded.maxTokens`; a member that is not a number (a string, a null) is absent, never
    /// an error of the whole answer. A fraction counts its whole part; a number past the range
    /// (1e300) is the maximum.
    static func tokenCounts(_ object: [UInt8]) -> [String: Int] {
        object.withUnsafeBufferPointer { bytes in
            var counts: [String: Int] = [:]
            var scanner = JSONScanner(bytes)
            _ = try? scanner.objectMembers { (key, value) throws(Never) in
                guard value.kind == .number, value.range.count <= 64 else { return }
                let name = JSONScanner.decodeString(bytes, key)
                guard tokenCountNames.contains(name) else { return }
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[value.range]), as: UTF8.self)
                guard let number = Double(text), !number.isNaN else { return }
                counts[name] = number >= Double(Bounded.maxTokens) ? Bounded.maxTokens : Bounded.tokens(Int(max(number, 0).rounded(.down)))
            }
            return counts
        }
    }

    /// The answer's top-level `usage` object (or TGI's `details`), as bytes; for an answer that
    /// is an array (TGI's `/generate` batch form), its first element's.
    private static func topLevelUsage(_ body: [UInt8]) -> (name: String, object: [UInt8])? {
        body.withUnsafeBufferPointer { bytes -> (String, [UInt8])? in
            var range = 0..<bytes.count
            var first = JSONScanner(bytes)
            if let elements = try? first.arrayElements() {
                guard let head = elements.first, head.kind == .object else { return nil }
                range = head.range
            }
            var usage: [UInt8]?
            var details: [UInt8]?
            var scanner = JSONScanner(bytes, range: range)
            _ = try? scanner.objectMembers { (key, value) throws(Never) in
                guard value.kind == .object else { return }
                if JSONScanner.stringToken(bytes, key, equals: "usage") {
                    usage = Array(bytes[value.range])
                } else if JSONScanner.stringToken(bytes, key, equals: "details") {
                    details = Array(bytes[value.range])
                }
            }
            if let usage { return ("usage", usage) }
            return details.map { ("details", $0) }
        }
    }

    /// The error message of an error body: OpenAI's `error.message`, Anthropic's
    /// `error.message`, Hugging Face's `error` (a string).
    /// The provider's own words about an error, for the job's `error` (which the tenant reads):
    /// at most 1,000 characters, and with anything shaped like a credential masked, since some
    /// servers echo the key they were sent ("Incorrect API key provided: sk-…").
    static func errorText(_ body: [UInt8]) -> String? {
        guard let object = ProviderErrorBody(body) else {
            let text = String(decoding: body.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return text.isEmpty ? nil : redacted(text)
        }
        let text = object.error.map { $0.message ?? $0.type } ?? object.errorText ?? object.message
        return text.map { redacted(String($0.prefix(1000))) }
    }

    /// `text` with bearer tokens and OpenAI, Anthropic, Hugging Face and Sluice keys masked.
    static func redacted(_ text: String) -> String {
        let range = NSRange(text.startIndex..., in: text)
        return secretShape.stringByReplacingMatches(in: text, range: range, withTemplate: "[redacted]")
    }

    // A constant pattern, checked by the tests: it cannot fail to compile at run time.
    nonisolated(unsafe) static let secretShape = try! NSRegularExpression(
        pattern: #"(?i)bearer\s+[A-Za-z0-9._~+/=-]{8,}|\b(?:sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,}|sluice_[A-Za-z0-9]{8}_[A-Za-z0-9_-]{8,})"#)

    static func isContextLength(_ message: String, body: [UInt8]) -> Bool {
        if ProviderErrorBody(body)?.error?.code == "context_length_exceeded" { return true }
        let text = message.lowercased()
        return text.contains("maximum context length") || text.contains("context length") || text.contains("context window")
            || text.contains("prompt is too long") || text.contains("exceed context limit")
            || (text.contains("max_new_tokens") && text.contains("must be <="))
    }
}

public enum ProviderError: Error, Sendable, Hashable, CustomStringConvertible {
    case missingSecret(provider: String, variable: String)

    public var description: String {
        switch self {
        case .missingSecret(let provider, let variable): "provider \(provider): the environment variable \(variable) (its API key) is not set"
        }
    }
}

/// A provider's error body: OpenAI's and Anthropic's `{"error": {"message", "type", "code"}}`,
/// Hugging Face's `{"error": "…"}`, or a bare `{"message": "…"}`. Every field is optional and of
/// the type it should be, or absent: a body in another shape is still an error, never a throw.
struct ProviderErrorBody: Decodable {
    /// `error` as an object.
    var error: Detail?
    /// `error` as a string.
    var errorText: String?
    var message: String?

    struct Detail: Decodable {
        var message: String?
        var type: String?
        var code: String?

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            message = try? container.decodeIfPresent(String.self, forKey: .message)
            type = try? container.decodeIfPresent(String.self, forKey: .type)
            code = try? container.decodeIfPresent(String.self, forKey: .code)
        }

        enum CodingKeys: String, CodingKey { case message, type, code }
    }

    enum CodingKeys: String, CodingKey { case error, message }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        error = try? container.decodeIfPresent(Detail.self, forKey: .error)
        errorText = try? container.decodeIfPresent(String.self, forKey: .error)
        message = try? container.decodeIfPresent(String.self, forKey: .message)
    }

    /// The body, when it is a JSON object.
    init?(_ body: [UInt8]) {
        guard let decoded = try? JSONDecoder().decode(Self.self, from: Data(body)) else { return nil }
        self = decoded
    }
}
