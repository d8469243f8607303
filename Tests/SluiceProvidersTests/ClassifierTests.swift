import Foundation
import Testing

@testable import SluiceProviders

func response(_ status: Int, _ body: String, _ headers: [(String, String)] = []) -> ProviderResponse {
    ProviderResponse(status: status, headers: headers.map { (name: $0.0, value: $0.1) }, body: Array(body.utf8))
}

/// Bodies and headers as the providers send them (copied from their documentation and real answers).
enum Samples {
    static let openAIChat = #"{"id":"chatcmpl-abc123","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I assist you today?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default"}"#
    static let anthropicMessage = #"{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","content":[{"type":"text","text":"Hi! My name is Claude."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":2095,"output_tokens":503,"cache_creation_input_tokens":0,"cache_read_input_tokens":100}}"#
    static let tgi = #"[{"generated_text":"Hello","details":{"finish_reason":"length","generated_tokens":5,"seed":null,"prefill":[],"tokens":[]}}]"#
    static let openAI429 = #"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-xyz on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#
    static let openAI429Headers = [
        ("x-ratelimit-limit-requests", "500"), ("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-reset-requests", "120ms"),
        ("x-ratelimit-limit-tokens", "200000"), ("x-ratelimit-remaining-tokens", "199150"), ("x-ratelimit-reset-tokens", "6m0s"),
        ("retry-after", "1"), ("retry-after-ms", "120"),
    ]
    static let anthropic429 = #"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#
    static let anthropicOverloaded = #"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
    static let openAIContext = #"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#
    static let anthropicContext = #"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 215000 tokens > 200000 maximum"}}"#
    static let tgiContext = #"{"error":"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`","error_type":"validation"}"#
    static let openAIAuth = #"{"error":{"message":"Incorrect API key provided: sk-abc. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#
    static let openAI500 = #"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#
}

@Suite struct ClassifierTests {
    @Test func aKeyEchoedInAProviderErrorIsMaskedBeforeTheTenantSeesIt() {
        let echoed = #"{"error":{"message":"Incorrect API key provided: sk-proj-AbCdEf1234567890. Also tried Bearer eyJhbGciOiJIUzI1NiJ9.x and hf_abcdefghijkl","type":"invalid_request_error"}}"#
        guard case .fatal(let message) = ProviderAdapter.classify(response(401, echoed)) else {
            Issue.record("a 401 is fatal")
            return
        }
        #expect(!message.contains("sk-proj") && !message.contains("eyJhbGci") && !message.contains("hf_abc"), "\(message)")
        #expect(message.contains("Incorrect API key provided: [redacted]"), "\(message)")
        // A huge message is cut to 1,000 characters.
        let long = #"{"error":{"message":""# + String(repeating: "x", count: 100_000) + #""}}"#
        guard case .retryable(let text) = ProviderAdapter.classify(response(500, long)) else { return }
        #expect(text.count < 1100)
    }

    @Test func successesCarryTheirUsageInEachDialect() {
        #expect(ProviderAdapter.classify(response(200, Samples.openAIChat)) == .success(Usage(input: 19, output: 10)))
        // Anthropic: cache reads and writes are input too.
        #expect(ProviderAdapter.classify(response(200, Samples.anthropicMessage)) == .success(Usage(input: 2195, output: 503)))
        #expect(ProviderAdapter.classify(response(200, Samples.tgi)) == .success(Usage(input: 0, output: 5)))
        #expect(ProviderAdapter.classify(response(200, "not json")) == .success(nil))
    }

    @Test func rateLimitsAreRecognisedWithTheirHints() throws {
        guard case .rateLimited(let info, let message) = ProviderAdapter.classify(response(429, Samples.openAI429, Samples.openAI429Headers)) else {
            Issue.record("not rate limited")
            return
        }
        #expect(message.contains("Limit 500"))
        #expect(info.retryAfter == .milliseconds(120))  // retry-after-ms wins over retry-after
        #expect(info.requests == RateLimitInfo.Window(limit: 500, remaining: 0, reset: .milliseconds(120)))
        #expect(info.tokens == RateLimitInfo.Window(limit: 200_000, remaining: 199_150, reset: .seconds(360)))

        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let resetAt = ISO8601DateFormatter().string(from: now.addingTimeInterval(30))
        let anthropic = response(429, Samples.anthropic429, [
            ("retry-after", "17"), ("anthropic-ratelimit-requests-limit", "50"), ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", resetAt), ("anthropic-ratelimit-input-tokens-limit", "50000"),
            ("anthropic-ratelimit-input-tokens-remaining", "0"), ("anthropic-ratelimit-input-tokens-reset", resetAt),
            ("anthropic-ratelimit-output-tokens-limit", "10000"), ("anthropic-ratelimit-output-tokens-remaining", "9000"),
            ("anthropic-ratelimit-output-tokens-reset", resetAt),
        ])
        guard case .rateLimited(let limits, _) = ProviderAdapter.classify(anthropic, now: now) else {
            Issue.record("not rate limited")
            return
        }
        #expect(limits.retryAfter == .seconds(17))
        #expect(limits.requests == RateLimitInfo.Window(limit: 50, remaining: 49, reset: .seconds(30)))
        #expect(limits.tokens?.limit == 50_000 && limits.tokens?.remaining == 0, "the tightest token window")
    }

    @Test func retryableFatalAndContextLength() {
        #expect(ProviderAdapter.classify(response(500, Samples.openAI500)) == .retryable("HTTP 500: The server had an error while processing your request. Sorry about that!"))
        #expect(ProviderAdapter.classify(response(529, Samples.anthropicOverloaded)) == .retryable("HTTP 529: Overloaded"))
        #expect(ProviderAdapter.classify(response(503, "")) == .retryable("HTTP 503"))
        #expect(ProviderAdapter.classify(response(408, "")) == .retryable("HTTP 408"))
        guard case .contextLength = ProviderAdapter.classify(response(400, Samples.openAIContext)),
            case .contextLength = ProviderAdapter.classify(response(400, Samples.anthropicContext)),
            case .contextLength = ProviderAdapter.classify(response(422, Samples.tgiContext)),
            case .contextLength = ProviderAdapter.classify(response(413, #"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#))
        else {
            Issue.record("a context-length error was not recognised")
            return
        }
        guard case .fatal(let why) = ProviderAdapter.classify(response(401, Samples.openAIAuth)) else {
            Issue.record("401 is not fatal")
            return
        }
        #expect(why.hasPrefix("HTTP 401: Incorrect API key"))
        guard case .fatal = ProviderAdapter.classify(response(400, #"{"error":{"message":"Unrecognized request argument supplied: foo","type":"invalid_request_error"}}"#)) else {
            Issue.record("a bad request is not fatal")
            return
        }
        #expect(ProviderAdapter.classify(transportError: "HTTPClientError.connectTimeout") == .retryable("HTTPClientError.connectTimeout"))
        #expect(ProviderAdapter.classify(transportError: "connection reset (error set): Connection reset by peer") != .fatal("x"))
        guard case .fatal = ProviderAdapter.classify(transportError: "HTTPClientError.invalidURL") else {
            Issue.record("a bad URL is retryable")
            return
        }
    }

    @Test func headerSpellings() {
        #expect(RateLimitInfo.goDuration("17ms") == .milliseconds(17))
        #expect(RateLimitInfo.goDuration("1s") == .seconds(1))
        #expect(RateLimitInfo.goDuration("2.5s") == .milliseconds(2500))
        #expect(RateLimitInfo.goDuration("6m0s") == .seconds(360))
        #expect(RateLimitInfo.goDuration("1h2m3.5s") == .milliseconds(3_723_500))
        #expect(RateLimitInfo.goDuration("soon") == nil)
        // retry-after as an HTTP date, ten seconds after the answer arrived.
        let arrived = Date(timeIntervalSince1970: 1_800_000_000)  // Fri, 15 Jan 2027 08:00:00 GMT
        let dated = RateLimitInfo(headers: [(name: "Retry-After", value: "Fri, 15 Jan 2027 08:00:10 GMT")], now: arrived)
        #expect(dated.retryAfter == .seconds(10))
        let seconds = RateLimitInfo(headers: [(name: "retry-after", value: "2")])
        #expect(seconds.retryAfter == .seconds(2) && seconds.pause == .seconds(2))
        // No retry-after, but a window with nothing left: pause until it resets.
        let exhausted = RateLimitInfo(headers: [
            (name: "x-ratelimit-remaining-requests", value: "0"), (name: "x-ratelimit-reset-requests", value: "1.5s"),
            (name: "x-ratelimit-remaining-tokens", value: "100"), (name: "x-ratelimit-reset-tokens", value: "30s"),
        ])
        #expect(exhausted.pause == .milliseconds(1500))
        #expect(RateLimitInfo(headers: []).pause == nil)
    }

    @Test func requestsCarryAuthForEachProviderAndTheBodyUnchanged() throws {
        let body = Array(#"{"model": "gpt-4o-mini",  "messages": []}"#.utf8)
        let environment = ["OPENAI_KEY": "sk-secret", "ANTHROPIC_KEY": "ant-secret"]
        let openAI = try ProviderAdapter.request(
            ProviderSettings(name: "openai", kind: .openai, baseURL: "https://api.openai.com/v1/", apiKeyEnvironment: "OPENAI_KEY"),
            path: "/chat/completions", body: body, idempotencyKey: "job_1", environment: environment)
        #expect(openAI.url == "https://api.openai.com/v1/chat/completions")
        #expect(openAI.body == body)
        #expect(openAI.headers.contains { $0.name == "Authorization" && $0.value == "Bearer sk-secret" && $0.secret })
        #expect(openAI.headers.contains { $0.name == "Idempotency-Key" && $0.value == "job_1" })
        #expect(!openAI.redactedHeaders.contains { $0.1.contains("sk-secret") })

        let anthropic = try ProviderAdapter.request(
            ProviderSettings(name: "anthropic", kind: .anthropic, baseURL: "https://api.anthropic.com", apiKeyEnvironment: "ANTHROPIC_KEY"),
            path: ProviderAdapter.defaultPath(.anthropic, model: nil), body: body, environment: environment)
        #expect(anthropic.url == "https://api.anthropic.com/v1/messages")
        #expect(anthropic.headers.contains { $0.name == "x-api-key" && $0.value == "ant-secret" && $0.secret })
        #expect(anthropic.headers.contains { $0.name == "anthropic-version" && $0.value == "2023-06-01" })
        #expect(!anthropic.headers.contains { $0.name == "Authorization" })

        #expect(ProviderAdapter.defaultPath(.huggingface, model: "meta-llama/Llama-3.1-8B") == "/models/meta-llama/Llama-3.1-8B")
        #expect(throws: ProviderError.missingSecret(provider: "hf", variable: "HF_TOKEN")) {
            try ProviderAdapter.request(
                ProviderSettings(name: "hf", kind: .huggingface, baseURL: "https://api-inference.huggingface.co", apiKeyEnvironment: "HF_TOKEN"),
                path: "/models/x", body: body, environment: [:])
        }
    }
}
