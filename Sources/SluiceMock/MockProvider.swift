import Foundation
import HTTPTypes
import Hummingbird
import Logging
import SluiceCore
import Synchronization

/// The mock provider (`sluice mock-provider`): OpenAI's `/v1/chat/completions`, `/v1/completions`
/// and `/v1/embeddings` and Anthropic's `/v1/messages`, answered with real-looking bodies and
/// `usage`, under configurable latency, limits and faults. Tests, benchmarks and the demo use it.
///
/// Over a limit it answers 429 as the real APIs do: OpenAI's routes with `retry-after`,
/// `retry-after-ms` and `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` (durations such
/// as `6m0s`); `/v1/messages` with `retry-after` and `anthropic-ratelimit-{requests,tokens}-
/// {limit,remaining,reset}` (RFC 3339 times). Successful answers carry the same headers.
///
/// `GET /stats` counts what it received and sent, the peak concurrency, and requests by
/// `Idempotency-Key` (or `X-Sluice-Job`), so that duplicates can be counted; `POST /stats/reset`
/// starts the counts again.
public final class MockProvider: Sendable {
    public let configuration: MockConfiguration
    private let state = Mutex(State())
    /// The batch APIs' files and batches (MockBatches.swift).
    let batchStore = Mutex(BatchStore())
    private static let window: Duration = .seconds(60)

    public init(configuration: MockConfiguration) {
        self.configuration = configuration
    }

    // MARK: - Serving

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        for (path, kind) in [
            ("/v1/chat/completions", Kind.chat), ("/v1/completions", .completion), ("/v1/embeddings", .embedding),
            ("/v1/messages", .messages),
        ] {
            router.post(RouterPath(path)) { request, context in try await self.answer(kind, request, context) }
        }
        router.get("/stats") { request, _ in
            let ids = request.uri.queryParameters["ids"] == "1"
            return Self.json(.ok, self.stats().json(includeIDs: ids))
        }
        router.post("/stats/reset") { _, _ in
            self.reset()
            return Self.json(.ok, Array(#"{"reset":true}"#.utf8))
        }
        addBatchRoutes(to: router)
        router.get("/healthz") { _, _ in Self.json(.ok, Array(#"{"status":"ok"}"#.utf8)) }
        return router
    }

    /// The server on `host:port` (0: any free port); `onRunning` is told the port bound.
    public func application(
        host: String = "127.0.0.1", port: Int, logger: Logger = Logger(label: "sluice.mock"),
        onRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        // A deep accept queue: a benchmark opens thousands of connections at once, and a full
        // queue drops SYNs that the client only retries a second later.
        Application(
            router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "sluice-mock", backlog: 16_384),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    // MARK: - Answering

    enum Kind { case chat, completion, embedding, messages }

    private struct Reset: Error {}

    private func answer(_ kind: Kind, _ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let body = try await request.body.collect(upTo: 16 << 20)
        let summary = body.withUnsafeReadableBytes { RequestSummary(UnsafeBufferPointer(start: $0.baseAddress?.assumingMemoryBound(to: UInt8.self), count: $0.count)) }
        let id = request.headers[HTTPField.Name("Idempotency-Key")!] ?? request.headers[HTTPField.Name("X-Sluice-Job")!]
        let cost = summary.promptTokens + (kind == .embedding ? 0 : summary.maxTokens)
        let anthropic = kind == .messages

        let decision = admit(cost: cost, id: id)
        switch decision {
        case .hidden:
            return Self.json(.tooManyRequests, Self.errorBody(anthropic: anthropic, status: 429, message: "Overloaded; try again later."))
        case .limited(let headers, let retryAfter):
            var response = Self.json(
                .tooManyRequests,
                Self.errorBody(anthropic: anthropic, status: 429, message: "Rate limit reached. Please try again in \(Self.goDuration(retryAfter))."))
            response.headers.append(contentsOf: Self.limitHeaders(headers, anthropic: anthropic))
            response.headers[.retryAfter] = String(max(1, Int((retryAfter / .seconds(1)).rounded(.up))))
            if !anthropic { response.headers[HTTPField.Name("retry-after-ms")!] = String(Int((retryAfter / .milliseconds(1)).rounded(.up))) }
            return response
        case .accepted(let headers):
            defer { finish() }
            var random = SystemRandomNumberGenerator()
            let draw = Double.random(in: 0..<1, using: &random)
            if draw < configuration.errorRate {
                count(\.serverErrors)
                return Self.json(.internalServerError, Self.errorBody(anthropic: anthropic, status: 500, message: "The server had an error while processing your request."))
            }
            if draw < configuration.errorRate + configuration.timeoutRate {
                count(\.timeouts)
                try await Task.sleep(for: configuration.timeoutDelay)
                return Self.json(.gatewayTimeout, Self.errorBody(anthropic: anthropic, status: 504, message: "timed out"))
            }
            try await Task.sleep(for: configuration.latency.sample(using: &random))
            if draw < configuration.errorRate + configuration.timeoutRate + configuration.resetRate {
                let answer = Self.body(kind, number: count(\.resets), summary: summary)
                // Half an answer, then the connection closes under the client.
                let half = ByteBuffer(bytes: answer.prefix(answer.count / 2))
                return Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: ResponseBody(contentLength: answer.count) { writer in
                        try await writer.write(half)
                        throw Reset()
                    })
            }
            var response = Self.json(.ok, Self.body(kind, number: count(\.succeeded), summary: summary))
            response.headers.append(contentsOf: Self.limitHeaders(headers, anthropic: anthropic))
            return response
        }
    }

    // MARK: - Limits

    /// What the limits said, and the values for the rate-limit headers.
    struct LimitState {
        var requestLimit: Int?
        var requestsRemaining: Int
        var requestsReset: Duration
        var tokenLimit: Int?
        var tokensRemaining: Int
        var tokensReset: Duration
    }

    enum Decision {
        case accepted(LimitState)
        case limited(LimitState, retryAfter: Duration)
        case hidden
    }

    private struct Entry {
        var at: ContinuousClock.Instant
        var tokens: Int
    }

    private struct State {
        var entries: [Entry] = []
        var head = 0
        var tokensInWindow = 0
        var inFlight = 0
        var stats = MockStats()

        mutating func prune(now: ContinuousClock.Instant) {
            while head < entries.count, now - entries[head].at >= MockProvider.window {
                tokensInWindow -= entries[head].tokens
                head += 1
            }
            if head > 4096 && head * 2 > entries.count {
                entries.removeFirst(head)
                head = 0
            }
        }

        var requestsInWindow: Int { entries.count - head }
    }

    private func admit(cost: Int, id: String?) -> Decision {
        let configuration = configuration
        let now = ContinuousClock.now
        return state.withLock { state -> Decision in
            state.stats.received += 1
            if let id { state.stats.ids[id, default: 0] += 1 }
            if let hidden = configuration.hiddenConcurrency, state.inFlight >= hidden {
                state.stats.rateLimited += 1
                state.stats.hiddenLimited += 1
                return .hidden
            }
            state.prune(now: now)
            let oldestExpiry = state.head < state.entries.count ? Self.window - (now - state.entries[state.head].at) : .zero
            var limits = LimitState(
                requestLimit: configuration.requestsPerMinute,
                requestsRemaining: configuration.requestsPerMinute.map { $0 - state.requestsInWindow } ?? 0,
                requestsReset: oldestExpiry,
                tokenLimit: configuration.tokensPerMinute,
                tokensRemaining: configuration.tokensPerMinute.map { $0 - state.tokensInWindow } ?? 0,
                tokensReset: oldestExpiry)
            var retryAfter: Duration? = nil
            if let rpm = configuration.requestsPerMinute, state.requestsInWindow + 1 > rpm {
                retryAfter = oldestExpiry
            }
            if let tpm = configuration.tokensPerMinute, state.tokensInWindow + cost > tpm {
                // Until enough of the window's tokens have aged out (never, if cost > tpm: a minute).
                var freed = tpm - state.tokensInWindow
                var wait = Self.window
                for index in state.head..<state.entries.count {
                    freed += state.entries[index].tokens
                    if freed >= cost {
                        wait = Self.window - (now - state.entries[index].at)
                        break
                    }
                }
                limits.tokensReset = wait
                retryAfter = max(retryAfter ?? .zero, wait)
            }
            if let concurrency = configuration.concurrency, state.inFlight >= concurrency {
                retryAfter = max(retryAfter ?? .zero, .seconds(1))
            }
            if let retryAfter {
                state.stats.rateLimited += 1
                return .limited(limits, retryAfter: max(retryAfter, .milliseconds(1)))
            }
            state.entries.append(Entry(at: now, tokens: cost))
            if configuration.recordArrivals { state.stats.arrivals.append(Date().timeIntervalSince1970) }
            state.tokensInWindow += cost
            state.inFlight += 1
            state.stats.peakConcurrency = max(state.stats.peakConcurrency, state.inFlight)
            limits.requestsRemaining -= 1
            limits.tokensRemaining -= cost
            if limits.requestsReset == .zero { limits.requestsReset = Self.window }
            if limits.tokensReset == .zero { limits.tokensReset = Self.window }
            return .accepted(limits)
        }
    }

    private func finish() {
        state.withLock { $0.inFlight -= 1 }
    }

    @discardableResult
    private func count(_ counter: WritableKeyPath<MockStats, Int>) -> Int {
        state.withLock { state in
            state.stats[keyPath: counter] += 1
            return state.stats[keyPath: counter]
        }
    }

    /// Counts a batch's lines by `custom_id`; returns the number the first line's answer takes.
    func countBatchLines(_ customIDs: [String]) -> Int {
        state.withLock { state in
            let first = state.stats.batchLines + 1
            state.stats.batchLines += customIDs.count
            state.stats.batches += 1
            for id in customIDs { state.stats.batchIDs[id, default: 0] += 1 }
            return first
        }
    }

    // MARK: - Stats

    /// What the mock has seen since it started (or since the last reset).
    public func stats() -> MockStats {
        state.withLock { state in
            var stats = state.stats
            stats.inFlight = state.inFlight
            return stats
        }
    }

    /// Forgets the counts and the rate-limit windows.
    public func reset() {
        state.withLock { state in
            let inFlight = state.inFlight
            state = State()
            state.inFlight = inFlight
        }
    }

    // MARK: - Bodies and headers

    static func json(_ status: HTTPResponse.Status, _ bytes: [UInt8]) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func body(_ kind: Kind, number: Int, summary: RequestSummary) -> [UInt8] {
        let created = Int(Date().timeIntervalSince1970)
        let prompt = summary.promptTokens
        let completion = min(summary.maxTokens, 12)
        let model = summary.model
        let text: String
        switch kind {
        case .chat:
            text = #"{"id":"chatcmpl-mock\#(number)","object":"chat.completion","created":\#(created),"model":\#(model),"choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the mock provider."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":\#(prompt),"completion_tokens":\#(completion),"total_tokens":\#(prompt + completion)}}"#
        case .completion:
            text = #"{"id":"cmpl-mock\#(number)","object":"text_completion","created":\#(created),"model":\#(model),"choices":[{"text":" Hello from the mock provider.","index":0,"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":\#(prompt),"completion_tokens":\#(completion),"total_tokens":\#(prompt + completion)}}"#
        case .embedding:
            text = #"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292,0.015797347,-0.0077780345,-0.0046922187,0.014739918,-0.012019476,0.003346455]}],"model":\#(model),"usage":{"prompt_tokens":\#(prompt),"total_tokens":\#(prompt)}}"#
        case .messages:
            text = #"{"id":"msg_mock\#(number)","type":"message","role":"assistant","model":\#(model),"content":[{"type":"text","text":"Hello from the mock provider."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":\#(prompt),"output_tokens":\#(completion)}}"#
        }
        return Array(text.utf8)
    }

    static func errorBody(anthropic: Bool, status: Int, message: String) -> [UInt8] {
        let text: String
        if anthropic {
            let type = status == 429 ? "rate_limit_error" : (status == 504 ? "timeout_error" : "api_error")
            text = #"{"type":"error","error":{"type":"\#(type)","message":"\#(message)"}}"#
        } else {
            let (type, code) = status == 429 ? ("requests", "\"rate_limit_exceeded\"") : ("server_error", "null")
            text = #"{"error":{"message":"\#(message)","type":"\#(type)","param":null,"code":\#(code)}}"#
        }
        return Array(text.utf8)
    }

    static func limitHeaders(_ limits: LimitState, anthropic: Bool) -> HTTPFields {
        var fields = HTTPFields()
        func add(_ name: String, _ value: String) { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        let wall = Date()
        for (kind, limit, remaining, reset) in [
            ("requests", limits.requestLimit, limits.requestsRemaining, limits.requestsReset),
            ("tokens", limits.tokenLimit, limits.tokensRemaining, limits.tokensReset),
        ] {
            guard let limit else { continue }
            if anthropic {
                add("anthropic-ratelimit-\(kind)-limit", String(limit))
                add("anthropic-ratelimit-\(kind)-remaining", String(max(0, remaining)))
                add("anthropic-ratelimit-\(kind)-reset", rfc3339(wall.addingTimeInterval(reset / .seconds(1))))
            } else {
                add("x-ratelimit-limit-\(kind)", String(limit))
                add("x-ratelimit-remaining-\(kind)", String(max(0, remaining)))
                add("x-ratelimit-reset-\(kind)", goDuration(reset))
            }
        }
        return fields
    }

    /// A duration as OpenAI writes it: `17ms`, `1s`, `2.5s`, `6m0s`, `1h2m3s`.
    static func goDuration(_ duration: Duration) -> String {
        let (whole, fraction) = duration.components
        let milliseconds = Int(whole) * 1000 + Int((fraction + 999_999_999_999_999) / 1_000_000_000_000_000)
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        let hours = milliseconds / 3_600_000
        let minutes = milliseconds / 60_000 % 60
        let seconds = Double(milliseconds % 60_000) / 1000
        let secondsText = seconds == seconds.rounded() ? String(Int(seconds)) : String(format: "%g", seconds)
        var text = ""
        if hours > 0 { text += "\(hours)h" }
        if hours > 0 || minutes > 0 { text += "\(minutes)m" }
        return text + secondsText + "s"
    }

    static func rfc3339(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}

/// What a request says that the mock needs, found without decoding the JSON: the model (as its
/// JSON token), `max_tokens` (16 when absent), and a prompt-token estimate (body bytes / 4).
struct RequestSummary {
    var model = #""mock-model""#
    var maxTokens = 16
    var promptTokens: Int
    /// The most `max_tokens` the mock counts.
    static let maxTokens = 1_000_000_000

    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        promptTokens = max(1, bytes.count / 4)
        if let token = JSONPeek.token(after: "\"model\"", in: bytes), token.first == UInt8(ascii: "\"") {
            model = String(decoding: token, as: UTF8.self)
        }
        // Clamped: a client's max_tokens of Int.max must not overflow the cost sum (the mock runs
        // inside `sluice up`, so it is held to the same standard as Sluice).
        if let value = JSONPeek.int(after: "\"max_tokens\"", in: bytes) { maxTokens = Bounded.clamp(value, to: 0...Self.maxTokens) }
    }

}

/// The mock's counts (`GET /stats`).
public struct MockStats: Sendable, Hashable {
    /// Every request to a provider route.
    public var received = 0
    public var succeeded = 0
    /// 429s of every kind, and those of the hidden concurrency limit among them.
    public var rateLimited = 0
    public var hiddenLimited = 0
    public var serverErrors = 0
    public var timeouts = 0
    public var resets = 0
    public var peakConcurrency = 0
    public var inFlight = 0
    /// Requests per `Idempotency-Key` (or `X-Sluice-Job`).
    public var ids: [String: Int] = [:]
    /// Batches accepted (OpenAI's and Anthropic's), their lines, and the lines by `custom_id`.
    public var batches = 0
    public var batchLines = 0
    public var batchIDs: [String: Int] = [:]
    /// When each accepted request arrived (Unix seconds), if the mock records them.
    public var arrivals: [Double] = []

    /// The most accepted requests in any window of `seconds` (from the recorded arrivals).
    public func mostInAnyWindow(seconds: Double) -> Int {
        var most = 0
        var start = 0
        for end in arrivals.indices {
            while arrivals[end] - arrivals[start] >= seconds { start += 1 }
            most = max(most, end - start + 1)
        }
        return most
    }

    /// Ids seen more than once: requests sent twice or more.
    public var duplicateIDs: Int { ids.values.filter { $0 > 1 }.count }

    /// `custom_id`s seen in more than one batch line: requests sent twice or more by batch.
    public var batchDuplicateIDs: Int { batchIDs.values.filter { $0 > 1 }.count }

    func json(includeIDs: Bool) -> [UInt8] {
        var object: [String: Any] = [
            "received": received, "succeeded": succeeded, "rate_limited": rateLimited, "hidden_limited": hiddenLimited,
            "server_errors": serverErrors, "timeouts": timeouts, "resets": resets, "peak_concurrency": peakConcurrency,
            "in_flight": inFlight, "unique_ids": ids.count, "duplicate_ids": duplicateIDs,
            "batches": batches, "batch_lines": batchLines, "batch_unique_ids": batchIDs.count, "batch_duplicate_ids": batchDuplicateIDs,
        ]
        if includeIDs {
            object["ids"] = ids
            object["batch_ids"] = batchIDs
        }
        if !arrivals.isEmpty { object["most_in_any_60s"] = mostInAnyWindow(seconds: 60) }
        return Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8))
    }
}
