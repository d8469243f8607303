import Foundation
import SluiceCore
import Testing

@Suite struct JobEnvelopeTests {
    static let full = JobEnvelope(
        batch: "batch_1", callbackURL: "https://hooks.example/path?token=a&b=c", customID: "line \"7\"\n",
        endpoint: .embeddings, format: .anthropic, metadata: RawJSON(unchecked: Array(#"{"route":"not this one","n":[1,2]}"#.utf8)),
        route: "smart")

    /// The one encoder's bytes read back as the same envelope through the one decoder.
    @Test func theEncodingReadsBackThroughItsDecoder() {
        #expect(JobEnvelope(decoding: Self.full.encoded) == Self.full)
        let plain = JobEnvelope(route: "a\\b\u{1}")
        #expect(JobEnvelope(decoding: plain.encoded) == plain)
    }

    /// The hand-written encoder writes exactly what JSONEncoder (sorted keys, slashes unescaped)
    /// writes for the Codable conformance, and JSONDecoder reads it back: one format, two doors.
    @Test func theEncodingIsWhatJSONEncoderWrites() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let compact = JobEnvelope(
            batch: "b", callbackURL: "https://x.example/y", customID: "c", endpoint: .embeddings, format: .openai,
            metadata: RawJSON(unchecked: Array(#"{"a":1,"b":"two"}"#.utf8)), route: "r")
        #expect(String(decoding: compact.encoded, as: UTF8.self) == String(decoding: try encoder.encode(compact), as: UTF8.self))
        #expect(try JSONDecoder().decode(JobEnvelope.self, from: Data(compact.encoded)) == compact)
    }

    /// Jobs already in Redis carry the shapes earlier versions wrote (byte splicing in submit,
    /// JSONSerialization in the facade and batches, which escapes slashes): each reads.
    @Test func everyEarlierShapeIsRead() {
        let submitted = JobEnvelope(decoding: Array(#"{"callback_url":"https://h.example/x","metadata":{"k": "v"},"route":"smart"}"#.utf8))
        #expect(submitted.callbackURL == "https://h.example/x")
        #expect(submitted.metadata?.bytes == Array(#"{"k": "v"}"#.utf8), "the client's metadata kept as sent")
        #expect(submitted.route == "smart")
        let facade = JobEnvelope(decoding: Array(#"{"endpoint":"embeddings","format":"openai","route":"r"}"#.utf8))
        #expect(facade == JobEnvelope(endpoint: .embeddings, format: .openai, route: "r"))
        let batch = JobEnvelope(decoding: Array(#"{"batch":"batch_1","custom_id":"a\/b","format":"anthropic"}"#.utf8))
        #expect(batch == JobEnvelope(batch: "batch_1", customID: "a/b", format: .anthropic))
    }

    /// Bytes that are not an envelope cost the job its extras, never a trap: not JSON, not an
    /// object, truncated, or fields of the wrong type or unknown value.
    @Test func damagedBytesGiveNothingRatherThanAnError() {
        for text in ["not json", "[1]", #"{"route":"a""#, "{", #""route""#] {
            #expect(JobEnvelope(decoding: Array(text.utf8)).isEmpty, "\(text)")
        }
        let odd = JobEnvelope(decoding: Array(#"{"route":5,"format":"cobol","endpoint":"chat","metadata":[1],"future":{"x":1}}"#.utf8))
        #expect(odd.isEmpty)
    }

    /// An envelope that says nothing is stored as nothing (no `meta` field), and JobSpec's
    /// envelope keeps the route's own field in step.
    @Test func anEmptyEnvelopeIsNoBytesAndTheSpecKeepsTheRouteInStep() {
        #expect(JobEnvelope().encoded.isEmpty)
        var spec = JobSpec(lane: "l", payload: [], envelope: JobEnvelope(route: "smart"))
        #expect(spec.route == "smart")
        #expect(spec.envelope.route == "smart")
        spec.envelope = JobEnvelope(callbackURL: "https://x.example")
        #expect(spec.route == nil)
        #expect(spec.envelope.callbackURL == "https://x.example")
    }
}

@Suite struct ModelDirectoryTargetTests {
    static let directory: ModelDirectory = {
        var openai = SluiceConfiguration.Provider(name: "openai", kind: "openai", baseURL: "http://127.0.0.1:1/v1")
        openai.models = ["gpt-4o-mini"]
        let providers = ["openai": openai, "local": SluiceConfiguration.Provider(name: "local", kind: "openai", baseURL: "http://127.0.0.1:2/v1")]
        let routes = ["smart": SluiceConfiguration.Route(name: "smart", targets: [.init(provider: "local", model: "qwen", weight: 1)])]
        return ModelDirectory(providers: providers, routes: routes)
    }()

    /// One resolver for every way a job names where it runs.
    @Test func everyTargetResolvesThroughTheOneResolver() {
        let directory = Self.directory
        #expect(directory.lane(for: .lane("openai/x")).map { ($0.lane, $0.route) }! == ("openai/x", nil))
        #expect(directory.lane(for: .provider("local", model: nil)).map { ($0.lane, $0.route) }! == ("local", nil))
        #expect(directory.lane(for: .provider("local", model: "m")).map { ($0.lane, $0.route) }! == ("local/m", nil))
        #expect(directory.lane(for: .model("smart")).map { ($0.lane, $0.route) }! == ("local/qwen", "smart"), "a route, recorded")
        #expect(directory.lane(for: .model("local/llama3")).map { ($0.lane, $0.route) }! == ("local/llama3", nil), "provider/model")
        #expect(directory.lane(for: .model("gpt-4o-mini")).map { ($0.lane, $0.route) }! == ("openai/gpt-4o-mini", nil), "a model a provider lists")
        #expect(directory.lane(for: .model("unheard-of")).map { ($0.lane, $0.route) } == nil)
        #expect(directory.lane(for: .model("local/../admin")).map { ($0.lane, $0.route) } == nil, "an unsafe model name resolves to nothing")
    }
}
