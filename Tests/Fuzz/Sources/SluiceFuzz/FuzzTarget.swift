import Foundation
import Logging
import SluiceCore
import SluiceProviders
import SluiceQueue
import SluiceRedis
import SluiceStore
import SluiceWebhooks

// The parsers are modules' internals, reached as tests reach them: the fuzz build is a debug
// build, whose modules are compiled for testing. A release build has no targets.
#if DEBUG
    @testable import SluiceBatch
    @testable import SluiceHTTP
    @testable import SluiceMock
#endif

/// One fuzz target: a parser of outside input, run on one input. It must return for every
/// input; a trap, a crash or a broken invariant (a `precondition` here) is a finding.
struct FuzzTarget: Sendable {
    let name: String
    let run: @Sendable (UnsafeBufferPointer<UInt8>) -> Void

    static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

#if !DEBUG
    extension FuzzTarget {
        static let all: [FuzzTarget] = []
    }
#else
extension FuzzTarget {
    static let all: [FuzzTarget] = [
        FuzzTarget(name: "json", run: json),
        FuzzTarget(name: "job", run: job),
        FuzzTarget(name: "bulk", run: bulk),
        FuzzTarget(name: "multipart", run: multipart),
        FuzzTarget(name: "ratelimit", run: rateLimit),
        FuzzTarget(name: "duration", run: duration),
        FuzzTarget(name: "batchline", run: batchLine),
        FuzzTarget(name: "config", run: configuration),
        FuzzTarget(name: "pipeline", run: pipeline),
        FuzzTarget(name: "template", run: template),
        FuzzTarget(name: "condition", run: condition),
        FuzzTarget(name: "mockbatch", run: mockBatch),
        FuzzTarget(name: "providerbatch", run: providerBatch),
        FuzzTarget(name: "eventid", run: eventID),
        FuzzTarget(name: "proxies", run: proxies),
        FuzzTarget(name: "traceparent", run: traceParent),
        FuzzTarget(name: "jwt", run: jwt),
        FuzzTarget(name: "webhookkeys", run: webhookKeys),
    ]

    static func text(_ bytes: UnsafeBufferPointer<UInt8>) -> String { String(decoding: bytes, as: UTF8.self) }

    // MARK: - SluiceHTTP

    /// The submit path's JSON scanner: a document, an array's elements, and every member, string
    /// and whole number within, each range inside the input.
    static func json(_ bytes: UnsafeBufferPointer<UInt8>) {
        var scanner = JSONScanner(bytes)
        if let value = try? scanner.document() { walk(bytes, value, depth: 0) }
        var array = JSONScanner(bytes)
        if let elements = try? array.arrayElements() {
            for element in elements { precondition(element.range.upperBound <= bytes.count) }
        }
        // The response cache's key: any object has one (with `all`), and its canonical form is a
        // fixed point (parsed again and made canonical, the same bytes, so the same key).
        let input = Array(bytes)
        if let key = ResponseCacheKey(lane: "l", scope: "t", body: input, policy: ResponseCachePolicy(all: true)),
            let value = try? JSONValue(parsing: input)
        {
            let canonical = ResponseCacheKey.canonicalBytes(value)
            guard let again = try? JSONValue(parsing: canonical) else { preconditionFailure("canonical bytes do not parse") }
            precondition(ResponseCacheKey.canonicalBytes(again) == canonical, "canonical form not a fixed point")
            precondition(ResponseCacheKey(lane: "l", scope: "t", body: canonical, policy: ResponseCachePolicy(all: true)) == key)
        }
        if let value = try? JSONValue(parsing: Array(bytes)) {
            _ = try? ResponseCachePolicy.parse(value)
            // A key's or a route's setting: what the key store keeps reads back as the same setting.
            if let setting = try? ResponseCacheDefault.parse(value) {
                precondition(ResponseCacheDefault(text: setting.text) == setting, "a cache setting does not read back")
            }
            // A key's budget (`"budget"` through /v1/keys): what the key store keeps, and what its
            // jobs' envelopes carry, read back as the same budget.
            if let budget = try? BudgetPolicy.parse(value) {
                precondition(BudgetPolicy(text: budget.text) == budget, "a budget does not read back")
                precondition(BudgetPolicy.fromEnvelope(budget.envelopeText(keyPrefix: "sluice_k"))?.policy == budget, "an envelope's budget does not read back")
            }
        }
        // A job's envelope's budget text, as a damaged envelope may hold it: read or refused, never a trap.
        _ = BudgetPolicy.fromEnvelope(String(decoding: input, as: UTF8.self))
    }

    private static func walk(_ bytes: UnsafeBufferPointer<UInt8>, _ value: JSONScanner.Value, depth: Int) {
        precondition(value.range.lowerBound >= 0 && value.range.upperBound <= bytes.count && !value.range.isEmpty)
        precondition(depth <= JSONScanner.maxDepth + 1)
        switch value.kind {
        case .object:
            var scanner = JSONScanner(bytes, range: value.range)
            var members: [(Range<Int>, JSONScanner.Value)] = []
            do { try scanner.objectMembers { key, member in members.append((key, member)) } } catch {
                preconditionFailure("an object the document accepted was refused: \(error)")
            }
            for (key, member) in members {
                _ = JSONScanner.decodeString(bytes, key)
                walk(bytes, member, depth: depth + 1)
            }
        case .array:
            var scanner = JSONScanner(bytes, range: value.range)
            guard let elements = try? scanner.arrayElements() else { preconditionFailure("an array the document accepted was refused") }
            for element in elements { walk(bytes, element, depth: depth + 1) }
        case .string: _ = JSONScanner.decodeString(bytes, value.range)
        case .number: _ = JSONScanner.wholeNumber(bytes, value.range)
        case .bool, .null: break
        }
    }

    static let directory = ModelDirectory(providers: [:], routes: routes)
    static let routes = [
        "split": SluiceConfiguration.Route(
            name: "split", targets: [.init(provider: "mock", model: "a", weight: 90), .init(provider: "mock", model: "b", weight: 10)])
    ]

    /// `POST /v1/jobs`: a refusal is an APIError, never a trap.
    static func job(_ bytes: UnsafeBufferPointer<UInt8>) {
        _ = try? JobRequest(bytes: bytes, range: 0..<bytes.count, tenant: "fuzz", idempotencyKey: nil, directory: directory)
    }

    /// `POST /v1/jobs/bulk`, as JSONL and as a JSON array, with a small line cap.
    static func bulk(_ bytes: UnsafeBufferPointer<UInt8>) {
        let body = Array(bytes)
        for jsonLines in [true, false] {
            if let bulk = try? BulkRequest(body: body, jsonLines: jsonLines, tenant: "fuzz", maxLines: 16, routes: routes) {
                precondition(!bulk.specs.isEmpty && bulk.specs.count <= 16)
            }
        }
    }

    /// `POST /v1/files`: the first line is the Content-Type's boundary, the rest the body.
    static func multipart(_ bytes: UnsafeBufferPointer<UInt8>) {
        let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
        let boundaryText = String(decoding: UnsafeBufferPointer(rebasing: bytes[..<newline]), as: UTF8.self)
        let body = Array(bytes[min(newline + 1, bytes.count)...])
        guard let boundary = try? Multipart.boundary(contentType: "multipart/form-data; boundary=" + boundaryText) else { return }
        precondition(boundary.utf8.count <= Multipart.maxBoundaryLength)
        if let form = try? Multipart(body, boundary: boundary) {
            precondition(!form.parts.isEmpty && form.parts.count <= Multipart.maxParts)
            precondition(form.parts.reduce(0) { $0 + $1.content.count } <= body.count)
        }
    }

    /// The mock provider's batch input: an OpenAI input file (JSONL), the same bytes as a
    /// `/v1/files` multipart body (boundary `b`), and as an Anthropic custom_id.
    static func mockBatch(_ bytes: UnsafeBufferPointer<UInt8>) {
        let body = Array(bytes)
        let (requests, failures) = MockProvider.openAILines(body, endpoint: "/v1/chat/completions")
        let lineCount = body.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).count
        precondition(failures.allSatisfy { ($0.line ?? 1) >= 1 && ($0.line ?? 1) <= lineCount })
        precondition(!requests.isEmpty || !failures.isEmpty, "an input is either requests or a failure")
        precondition(requests.count <= MockProvider.openAIBatchMaxRequests && failures.count <= 10)
        if let parts = MockMultipart.parts(body, boundary: "b") {
            precondition(parts.count <= 16 && parts.reduce(0) { $0 + $1.content.count } <= body.count)
        }
        _ = MockProvider.isAnthropicCustomID(text(bytes))
    }

    // MARK: - SluiceProviders

    /// What a provider's batch API answers (a batch object, a list page, an OpenAI output or
    /// error file, an Anthropic results file, an RFC 3339 time): every count within its bounds,
    /// every line either read or counted as skipped, never a trap.
    static func providerBatch(_ bytes: UnsafeBufferPointer<UInt8>) {
        let body = Array(bytes)
        let lineCount = body.split(separator: UInt8(ascii: "\n")).count
        for lines in [ProviderBatchParsing.openAILines(body, maxLineBytes: 4096), ProviderBatchParsing.anthropicLines(body, maxLineBytes: 4096)] {
            precondition(lines.skipped >= 0 && lines.results.count + lines.skipped <= lineCount)
            for line in lines.results {
                precondition(!line.customID.isEmpty && line.customID.utf8.count <= 256)
                if case .errored(let status, _) = line.result { precondition((0...999).contains(status)) }
            }
        }
        for anthropic in [false, true] {
            let batch = anthropic ? ProviderBatchParsing.anthropicBatch(body) : ProviderBatchParsing.openAIBatch(body)
            let batches = (ProviderBatchParsing.page(body, anthropic: anthropic)?.batches ?? []) + (batch.map { [$0] } ?? [])
            for batch in batches {
                precondition(!batch.id.isEmpty && (0...ProviderBatchParsing.maxCount).contains(batch.total))
                if case .inProgress(let done, let total) = batch.status {
                    precondition((0...ProviderBatchParsing.maxCount).contains(done) && total == batch.total)
                    precondition(done <= total || (!anthropic && total == 0))
                }
            }
        }
        if let time = ProviderBatchParsing.rfc3339(text(bytes)) { precondition(time.value >= -86_400_000 && time.value < 253_402_387_200_000) }
    }

    /// A provider's answer headers (`name: value` a line): whatever they say, the waits and
    /// limits read from them stay within their bounds.
    static func rateLimit(_ bytes: UnsafeBufferPointer<UInt8>) {
        let headers = text(bytes).split(separator: "\n").map { line -> (name: String, value: String) in
            let parts = line.split(separator: ":", maxSplits: 1)
            return (String(parts.first ?? ""), parts.count > 1 ? String(parts[1]).trimmingCharacters(in: .whitespaces) : "")
        }
        let info = RateLimitInfo(headers: headers, now: Date(timeIntervalSince1970: 1_750_000_000))
        if let wait = info.retryAfter { precondition(wait >= .zero && wait <= Bounded.maxPeerWait) }
        for window in [info.requests, info.tokens].compactMap({ $0 }) {
            if let reset = window.reset { precondition(reset >= .zero) }
        }
        for header in headers { _ = RateLimitInfo.goDuration(header.value) }
    }

    // MARK: - Live events

    /// An SSE event id from a client (`Last-Event-ID`, `last_event_id=`) as the event hub reads it:
    /// nil or a position that writes back as an id reading as the same position, never a trap.
    static func eventID(_ bytes: UnsafeBufferPointer<UInt8>) {
        let string = text(bytes)
        guard let position = EventPosition(eventID: string) else { return }
        precondition(string.utf8.count <= 64)
        precondition(EventPosition(eventID: position.description) == position)
        precondition(position.tag.utf8.count == 8)
        _ = position < EventPosition(ms: .max, tag: "ffffffff", seq: .max)
    }

    // MARK: - SluiceCore

    /// Durations and the bounded conversions of foreign numbers: never a trap, always in range.
    static func duration(_ bytes: UnsafeBufferPointer<UInt8>) {
        let string = text(bytes)
        if let parsed = Duration(parsing: string) { precondition(parsed >= .zero && parsed <= .milliseconds(Bounded.maxMillis)) }
        if let value = Bounded.int(string, in: -1_000...1_000) { precondition((-1_000...1_000).contains(value)) }
        if let value = Bounded.clampedInt(string, to: 0...86_400) { precondition((0...86_400).contains(value)) }
        if let value = Bounded.duration(string, in: .zero ... .seconds(3_600)) { precondition(value >= .zero && value <= .seconds(3_600)) }
        if let value = Bounded.clampedSeconds(string) { precondition(value >= .zero && value <= Bounded.maxPeerWait) }
        // The same bytes as doubles (NaN, infinities, huge and tiny values among them).
        var index = 0
        while index + 8 <= bytes.count {
            var bits: UInt64 = 0
            for offset in 0..<8 { bits |= UInt64(bytes[index + offset]) << (8 * UInt64(offset)) }
            let double = Double(bitPattern: bits)
            if let value = Bounded.int(double, in: Int.min...Int.max) { _ = value }
            _ = Bounded.duration(seconds: double, in: .zero ... .seconds(86_400))
            _ = Bounded.clampedDuration(seconds: double, to: .zero ... .seconds(86_400))
            _ = Bounded.unixMillis(seconds: double)
            index += 8
        }
    }

    /// `config/sluice.yaml` and the worker pools' files: a ConfigurationError, never a trap.
    static func configuration(_ bytes: UnsafeBufferPointer<UInt8>) {
        let yaml = text(bytes)
        if let configuration = try? SluiceConfiguration.load(yaml: yaml, environment: [:]) {
            // Every route a file can describe chooses a target of its own, whatever its weights, limits and prices.
            var random = SplitMix64(seed: 1)
            let conditions = RouteConditions(limits: configuration.providers.mapValues(\.limits), prices: configuration.prices, now: 1)
            for route in configuration.routes.values {
                let lane = route.choose(conditions: conditions, deadline: 2, random: &random).lane
                precondition(route.targets.contains { $0.lane == lane } || route.canary?.lane == lane)
            }
        }
        _ = try? WorkerPoolDefinition.load(yaml: yaml, file: "fuzz.yaml")
    }

    // MARK: - Pipelines

    /// A pipeline definition (`POST /v1/pipelines`): a PipelineError or a pipeline, never a
    /// trap; a pipeline it accepts writes back to a definition that reads as the same one, and
    /// any JSON value it reads writes back to JSON that reads as the same value.
    static func pipeline(_ bytes: UnsafeBufferPointer<UInt8>) {
        let body = Array(bytes)
        if let value = try? JSONValue(parsing: body) {
            let written = value.jsonBytes
            guard let again = try? JSONValue(parsing: written) else { preconditionFailure("written JSON does not parse: \(value)") }
            precondition(again.sameValue(as: value), "JSON changed through writing")
        }
        if let pipeline = try? Pipeline(json: body) {
            precondition(!pipeline.steps.isEmpty && pipeline.steps.count <= Pipeline.maxSteps)
            guard let again = try? Pipeline(json: pipeline.jsonBytes) else { preconditionFailure("a pipeline's own definition was refused") }
            precondition(again.jsonValue.sameValue(as: pipeline.jsonValue), "a pipeline changed through its definition")
            for step in pipeline.steps { _ = Pipeline.readiness(of: step, finished: [:]) }
        }
    }

    /// A context the template and condition targets read: of each kind of value, and deep.
    static let fuzzContext: JSONValue = {
        let text = #"{"input": {"text": "Hello, wörld 🌊", "n": 3, "x": 0.5, "list": ["a", "b", 1, null, {"k": [1, 2]}], "flag": true, "json": "```json\n{\"a\": [1, 2.5e3]}\n```", "lines": " a \n\n b\n", "big": 9007199254740993, "neg": -1e300},"run": {"id": "run_1"}, "item": {"k": "v"}, "index": 7, "steps": {"s": {"status": "succeeded", "result": {"choices": [{"message": {"content": "negative"}}]}, "output": "negative"}, "f": {"status": "succeeded", "results": [1, "two", [3]], "outputs": ["1", "two", null]}, "k": {"status": "skipped"}}}"#
        return try! JSONValue(parsing: Array(text.utf8))  // safe: a literal
    }()

    /// A template: the first line is a template string, the rest (if it parses) a JSON template;
    /// both rendered in `fuzzContext` under a 64 KiB limit. A TemplateError, never a trap, and a
    /// rendering never larger than its limit.
    static func template(_ bytes: UnsafeBufferPointer<UInt8>) {
        let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
        let line = String(decoding: UnsafeBufferPointer(rebasing: bytes[..<newline]), as: UTF8.self)
        var sources: [JSONValue] = [.string(line)]
        if newline < bytes.count, let value = try? JSONValue(parsing: Array(bytes[(newline + 1)...])) { sources.append(value) }
        for source in sources {
            guard let compiled = try? Template(source) else { continue }
            _ = compiled.paths.map(\.description)
            // Each expression's own spelling reads back as the same expression.
            for expression in compiled.expressions {
                let again = try? Template(.string("{{ " + expression.description + " }}"))
                precondition(again?.expressions == [expression], "an expression's text does not read back: \(expression)")
            }
            if let rendered = try? compiled.render(context: fuzzContext, limit: 64 << 10) {
                precondition(rendered.encodedSize(upTo: 1 << 20) <= (64 << 10) + 1024, "a rendering past its limit")
                _ = rendered.jsonBytes
            }
        }
    }

    /// A `when:` condition, parsed and evaluated in `fuzzContext`: a TemplateError or a Bool.
    static func condition(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let condition = try? Condition(parsing: text(bytes)) else { return }
        _ = condition.paths.map(\.description)
        _ = try? condition.evaluate(context: fuzzContext)
        // What it reads back as parses again.
        for expression in condition.expressions {
            precondition((try? Template(.string("{{ " + expression.description + " }}"))) != nil, "an expression's text does not parse: \(expression)")
        }
    }

    // MARK: - SluiceBatch

    /// A batch service that only checks input (its Redis is never reached).
    static let batches: BatchService = {
        let redis = RedisClient(configuration: try! RedisConfiguration(url: "redis://127.0.0.1:1"), connections: 1)
        let path = NSTemporaryDirectory() + "sluice-fuzz-\(getpid()).sqlite"
        let providers = ["mock": SluiceConfiguration.Provider(name: "mock", kind: "openai", baseURL: "http://127.0.0.1:9/v1")]
        return BatchService(
            queue: JobQueue(redis: redis), database: try! SluiceDatabase(path: path), webhooks: WebhookStore(redis: redis),
            directory: ModelDirectory(providers: providers, routes: routes), logger: Logger(label: "fuzz"))
    }()

    /// An OpenAI batch input file (every line checked) and an Anthropic batch's `requests`.
    static func batchLine(_ bytes: UnsafeBufferPointer<UInt8>) {
        let content = Array(bytes)
        for endpoint in ["/v1/chat/completions", "/v1/embeddings"] {
            let checked = batches.checkOpenAI(content, endpoint: endpoint)
            precondition(checked.errors.count <= 101)
        }
        _ = try? batches.checkAnthropic(content)
    }
}
#endif
