import Foundation
import SluiceCore
import Testing

@testable import SluiceHTTP

@Suite struct JobRequestTests {
    static let directory: ModelDirectory = {
        var openai = SluiceConfiguration.Provider(name: "openai", kind: "openai", baseURL: "http://127.0.0.1:1/v1")
        openai.models = ["gpt-4o-mini"]
        let routes = ["smart": SluiceConfiguration.Route(name: "smart", targets: [.init(provider: "openai", model: "gpt-4o", weight: 1)])]
        return ModelDirectory(providers: ["openai": openai], routes: routes)
    }()

    static func spec(_ text: String) throws(APIError) -> JobSpec {
        try JobRequest(json: Array(text.utf8), tenant: "t", idempotencyKey: nil, directory: directory).spec
    }

    /// A model alone resolves like the facade's and a batch's (the one resolver): a route (and
    /// the route is recorded, in the envelope and in its own field), provider/model, a listed model.
    @Test func aModelAloneResolvesThroughTheOneResolver() throws {
        let routed = try Self.spec(#"{"model": "smart", "request": {}, "metadata": {"a": [1, 2]}, "callback_url": "https://h.example/x"}"#)
        #expect(routed.lane == "openai/gpt-4o")
        #expect(routed.route == "smart")
        #expect(routed.envelope == JobEnvelope(
            callbackURL: "https://h.example/x", metadata: RawJSON(unchecked: Array(#"{"a": [1, 2]}"#.utf8)), route: "smart"))
        #expect(try Self.spec(#"{"model": "openai/o3", "request": {}}"#).lane == "openai/o3")
        #expect(try Self.spec(#"{"model": "gpt-4o-mini", "request": {}}"#).lane == "openai/gpt-4o-mini")
        #expect(try Self.spec(#"{"lane": "openai", "request": {"x": 1}}"#).metadata.isEmpty, "nothing to say: no envelope")
        #expect(throws: APIError.self) { try Self.spec(#"{"model": "nobody-serves-this", "request": {}}"#) }
    }

    /// Parsing and policy are separate steps: the parser takes any well-typed callback URL; the
    /// policy refuses one that is not http(s), and applies the defaults.
    @Test func parsingAndPolicyAreSeparateSteps() throws {
        let bytes = Array(#"{"lane": "openai", "request": {"q": 1}, "callback_url": "ftp://h.example/x", "priority": 2}"#.utf8)
        let fields = try bytes.withUnsafeBufferPointer { buffer throws(APIError) in try JobRequest.fields(buffer, 0..<buffer.count) }
        #expect(fields.target == .lane("openai"))
        #expect(fields.callbackURL == "ftp://h.example/x")
        #expect(fields.request == Array(#"{"q": 1}"#.utf8))
        #expect(throws: APIError.self) { try JobRequest.spec(fields, tenant: "t", idempotencyKey: nil, directory: Self.directory) }
        var fine = fields
        fine.callbackURL = nil
        let spec = try JobRequest.spec(fine, tenant: "t", idempotencyKey: "k", directory: Self.directory)
        #expect(spec.priority == 2 && spec.maxAttempts == 3 && spec.idempotencyKey == "k")
    }
}
