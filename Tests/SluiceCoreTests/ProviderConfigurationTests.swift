import Foundation
import SluiceCore
import Testing

@Suite struct ProviderConfigurationTests {
    @Test func providersAndTheirLimitsParseAndLanesFindThem() throws {
        let configuration = try SluiceConfiguration.load(yaml: """
            providers:
              openai: { kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY,
                        limits: { rpm: 500, tpm: 200000, concurrency: 64 } }
              local:  { kind: openai, base_url: "http://127.0.0.1:9001/v1", timeout: 30s, path: /completions }
            """)
        let openAI = try #require(configuration.providers["openai"])
        #expect(openAI.limits == .init(requestsPerMinute: 500, tokensPerMinute: 200_000, concurrency: 64))
        #expect(openAI.apiKeyEnvironment == "OPENAI_API_KEY")
        #expect(configuration.providers["local"]?.timeout == .seconds(30))
        #expect(configuration.provider(forLane: "openai/gpt-4o-mini")?.model == "gpt-4o-mini")
        #expect(configuration.provider(forLane: "local")?.provider.path == "/completions")
        #expect(configuration.provider(forLane: "unknown/model") == nil)
    }

    @Test func badProvidersNameTheKey() {
        #expect(throws: ConfigurationError(key: "providers.x.kind", problem: "must be one of openai, anthropic, huggingface")) {
            try SluiceConfiguration.load(yaml: "providers: { x: { kind: cohere, base_url: 'http://a' } }")
        }
        #expect(throws: ConfigurationError(key: "providers.x.base_url", problem: "must be an http(s) URL")) {
            try SluiceConfiguration.load(yaml: "providers: { x: { kind: openai, base_url: 'ftp://a' } }")
        }
        #expect(throws: ConfigurationError(key: "providers.x.limits.rpn", problem: "is not a known setting")) {
            try SluiceConfiguration.load(yaml: "providers: { x: { kind: openai, base_url: 'http://a', limits: { rpn: 5 } } }")
        }
    }

    @Test func theShippedPoolDefinitionParsesAndBadOnesNameTheKey() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../workers/default.yaml")
        let pool = try WorkerPoolDefinition.load(yaml: try String(contentsOf: url, encoding: .utf8), file: "default.yaml")
        #expect(pool.lanes == nil && pool.concurrency == 64 && pool.grace == .seconds(30) && pool.maintenance)
        let named = try WorkerPoolDefinition.load(yaml: "lanes: [openai/gpt-4o-mini, local]\nconcurrency: 8", file: "p.yaml")
        #expect(named.lanes == ["openai/gpt-4o-mini", "local"] && named.concurrency == 8)
        #expect(throws: ConfigurationError(key: "p.yaml.concurency", problem: "is not a known setting")) {
            try WorkerPoolDefinition.load(yaml: "concurency: 8", file: "p.yaml")
        }
        #expect(throws: ConfigurationError(key: "p.yaml.lanes", problem: "must be a list of lanes, or all")) {
            try WorkerPoolDefinition.load(yaml: "lanes: 5", file: "p.yaml")
        }
    }
}
