import Foundation
import SluiceCore
import Testing

@Suite struct ProviderConfigurationTests {
    @Test func providersAndTheirLimitsParseAndLanesFindThem() throws {
        let configuration = try SluiceConfiguration.load(yaml: """
            providers:
              openai: { kind: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY,
                        limits: { rpm: 500, tpm: 200000, concurrency: 64 } }
              local:  { kind: openai, base_url: "http://127.0.0.1:9001/v1", timeout: 30s, path: /completions,
                        breaker: { failures: 4, open_for: 5s } }
            """)
        #expect(configuration.providers["local"]?.breakerFailures == 4)
        #expect(configuration.providers["local"]?.breakerOpenFor == .seconds(5))
        #expect(configuration.providers["openai"]?.breakerFailures == 10, "the default")
        let openAI = try #require(configuration.providers["openai"])
        #expect(openAI.limits == .init(requestsPerMinute: 500, tokensPerMinute: 200_000, concurrency: 64))
        #expect(openAI.apiKeyEnvironment == "OPENAI_API_KEY")
        #expect(configuration.providers["local"]?.timeout == .seconds(30))
        #expect(configuration.provider(forLane: "openai/gpt-4o-mini")?.model == "gpt-4o-mini")
        #expect(configuration.provider(forLane: "local")?.provider.path == "/completions")
        #expect(configuration.provider(forLane: "unknown/model") == nil)
    }

    @Test func anExternalProviderNeedsNoBaseURLAndGetsNoWorkers() throws {
        let configuration = try SluiceConfiguration.load(yaml: "providers: { gpu: { kind: external } }")
        #expect(configuration.providers["gpu"]?.kind == "external" && configuration.providers["gpu"]?.baseURL == "")
        #expect(ModelDirectory(providers: configuration.providers, routes: [:]).laneProblem("gpu/my-model") == nil)
        #expect(throws: ConfigurationError.self) { try SluiceConfiguration.load(yaml: "providers: { gpu: { kind: external, base_url: 'ftp://x' } }") }
    }

    @Test func badProvidersNameTheKey() {
        #expect(throws: ConfigurationError(key: "providers.x.kind", problem: "must be one of openai, anthropic, huggingface, external")) {
            try SluiceConfiguration.load(yaml: "providers: { x: { kind: cohere, base_url: 'http://a' } }")
        }
        #expect(throws: ConfigurationError(key: "providers.x.base_url", problem: "must be an http(s) URL")) {
            try SluiceConfiguration.load(yaml: "providers: { x: { kind: openai, base_url: 'ftp://a' } }")
        }
        #expect(throws: ConfigurationError(key: "providers.x.limits.rpn", problem: "is not a known setting; did you mean providers.x.limits.rpm?")) {
            try SluiceConfiguration.load(yaml: "providers: { x: { kind: openai, base_url: 'http://a', limits: { rpn: 5 } } }")
        }
        #expect(throws: ConfigurationError(key: "providers.x.breaker.failures", problem: "must be a whole number within 1...1000000")) {
            try SluiceConfiguration.load(yaml: "providers: { x: { kind: openai, base_url: 'http://a', breaker: { failures: 0 } } }")
        }
    }

    /// The shipped config's demo route: a fallback from the OpenAI-shaped demo to the same mock
    /// spoken to as Anthropic, which a worker lane knows as its route and the request's API.
    @Test func theShippedDemoRouteFallsBackAcrossKinds() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/sluice.yaml")
        let configuration = try SluiceConfiguration.load(yaml: try String(contentsOf: url, encoding: .utf8))
        let route = try #require(configuration.routes["demo-smart"])
        #expect(route.targets.map(\.lane) == ["demo/gpt-4o-mini", "demo-claude/claude-3-5-haiku"])
        #expect(configuration.provider(forLane: "demo-claude/claude-3-5-haiku")?.provider.kind == "anthropic")
    }

    @Test func theShippedPoolDefinitionParsesAndBadOnesNameTheKey() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../workers/default.yaml")
        let pool = try WorkerPoolDefinition.load(yaml: try String(contentsOf: url, encoding: .utf8), file: "default.yaml")
        #expect(pool.lanes == nil && pool.concurrency == 64 && pool.grace == .seconds(30) && pool.maintenance)
        let named = try WorkerPoolDefinition.load(yaml: "lanes: [openai/gpt-4o-mini, local]\nconcurrency: 8", file: "p.yaml")
        #expect(named.lanes == ["openai/gpt-4o-mini", "local"] && named.concurrency == 8)
        #expect(throws: ConfigurationError(key: "p.yaml.concurency", problem: "is not a known setting; did you mean p.yaml.concurrency?")) {
            try WorkerPoolDefinition.load(yaml: "concurency: 8", file: "p.yaml")
        }
        #expect(throws: ConfigurationError(key: "p.yaml.lanes", problem: "must be a list of lanes, or all")) {
            try WorkerPoolDefinition.load(yaml: "lanes: 5", file: "p.yaml")
        }
    }
}

@Suite struct RouteConfigurationTests {
    @Test func routesParseAndPickByWeight() throws {
        let configuration = try SluiceConfiguration.load(yaml: """
            providers:
              openai: { kind: openai, base_url: "https://api.openai.com/v1" }
              local: { kind: openai, base_url: "http://127.0.0.1:9001/v1" }
            routes:
              split-test: [ { provider: openai, model: gpt-4o-mini, weight: 90 }, { provider: local, model: qwen, weight: 10 } ]
              gpt-4o-mini: [ openai/gpt-4o-mini, local/qwen ]
            """)
        let split = try #require(configuration.routes["split-test"])
        #expect(split.targets.map(\.lane) == ["openai/gpt-4o-mini", "local/qwen"])
        var random = SplitMix64(seed: 7)
        let picks = (0..<10_000).map { _ in split.pick(using: &random) }
        let local = picks.filter { $0 == "local/qwen" }.count
        #expect(local > 800 && local < 1_200, "\(local)")
        // No weights: always the first target.
        let plain = try #require(configuration.routes["gpt-4o-mini"])
        #expect((0..<100).allSatisfy { _ in plain.pick(using: &random) == "openai/gpt-4o-mini" })
    }

    @Test func badRoutesNameTheKey() {
        #expect(throws: ConfigurationError(key: "routes.r[0]", problem: "names provider 'ghost', which is not under providers")) {
            try SluiceConfiguration.load(yaml: "routes: { r: [ ghost/m ] }")
        }
        #expect(throws: ConfigurationError(key: "routes.r", problem: "has weights that add up to 0")) {
            try SluiceConfiguration.load(yaml: "providers: { p: { kind: openai, base_url: 'http://a' } }\nroutes: { r: [ { provider: p, weight: 0 } ] }")
        }
    }
}
