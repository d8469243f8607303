import Foundation
import SluiceCore
import Testing

@Suite struct SluiceConfigurationTests {
    @Test func theShippedConfigParses() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/sluice.yaml")
        let configuration = try SluiceConfiguration.load(yaml: try String(contentsOf: url, encoding: .utf8))
        #expect(configuration.redis.url == nil)  // the embedded default
        #expect(configuration.queue.leaseDuration == .seconds(60))
        #expect(configuration.queue.retry == .exponential(base: .seconds(1), max: .seconds(300), jitter: 0.5))
        #expect(configuration.queue.resultTTL == .seconds(7 * 86_400))
        #expect(configuration.queue.maintenanceInterval == .milliseconds(500))
        #expect(configuration.mockProviderPort == 9100)
        #expect(configuration.provider(forLane: "demo")?.provider.baseURL == "http://127.0.0.1:9100/v1")
    }

    @Test func pricesBatchesModelsAndTheEventStreamCapsParse() throws {
        let configuration = try SluiceConfiguration.load(
            yaml: """
                queue: { event_stream_cap: 1000, event_stream_max: 50000 }
                providers:
                  p: { kind: openai, base_url: "http://x/v1", models: [m1, m2] }
                  c: { kind: anthropic, base_url: "http://y", models: [m2] }
                routes: { r: [p/m1] }
                prices: { gpt-4o: { input: 2.5, output: 10 }, gpt-4o-mini: { input: 0.15, output: 0.6 } }
                batches: { max_requests: 10, priority: -20 }
                """)
        #expect(configuration.queue.eventStreamCap == 1000)
        #expect(configuration.queue.eventStreamMax == 50000)
        #expect(configuration.batches.maxRequests == 10)
        #expect(configuration.batches.priority == -20)
        // The longest prefix prices a dated model name.
        #expect(configuration.price(of: "gpt-4o-mini-2024-07-18") == .init(input: 0.15, output: 0.6))
        #expect(configuration.price(of: "gpt-4o-2024-08-06") == .init(input: 2.5, output: 10))
        #expect(configuration.price(of: "llama") == nil)
        let directory = ModelDirectory(providers: configuration.providers, routes: configuration.routes)
        #expect(directory.resolve("r")?.lane == "p/m1")
        #expect(directory.resolve("r")?.route == "r")
        #expect(directory.resolve("c/anything")?.kind == "anthropic")
        #expect(directory.resolve("m1")?.lane == "p/m1")
        #expect(directory.resolve("m2")?.lane == "c/m2")  // both list it: the first by name
        #expect(directory.resolve("nope") == nil)
        #expect(throws: ConfigurationError(key: "prices.x.input", problem: "must be a number within 0.0...1000000.0")) {
            try SluiceConfiguration.load(yaml: "prices: { x: { input: -1 } }")
        }
        #expect(throws: ConfigurationError(key: "providers.p.models[0]", problem: "must be a model name (letters, digits, '/' and -._:@+=)")) {
            try SluiceConfiguration.load(yaml: "providers: { p: { kind: openai, base_url: \"http://x\", models: [\"a b\"] } }")
        }
    }

    @Test func environmentOverridesTheFile() throws {
        let configuration = try SluiceConfiguration.load(
            yaml: "redis: { url: redis://file:6379 }\nserver: { port: 8080 }",
            environment: ["SLUICE_REDIS_URL": "redis://:secret@env:6380/2", "SLUICE_PORT": "9090", "SLUICE_DB": "/data/s.sqlite"])
        #expect(configuration.redis.url == "redis://:secret@env:6380/2")
        #expect(configuration.server.port == 9090)
        #expect(configuration.database == "/data/s.sqlite")
    }

    @Test func unknownKeysAndBadValuesNameTheKey() {
        #expect(throws: ConfigurationError(key: "queue.lease_duraton", problem: "is not a known setting; did you mean queue.lease_duration?")) {
            try SluiceConfiguration.load(yaml: "queue:\n  lease_duraton: 30s")
        }
        #expect(throws: ConfigurationError(key: "queue.lease_duration", problem: "must be a duration such as 500ms, 60s, 5m, 24h or 7d")) {
            try SluiceConfiguration.load(yaml: "queue:\n  lease_duration: soon")
        }
        #expect(throws: ConfigurationError(key: "SLUICE_PORT", problem: "'http' is not a port number")) {
            try SluiceConfiguration.load(yaml: "", environment: ["SLUICE_PORT": "http"])
        }
        #expect(throws: ConfigurationError(key: "queue.retry.max", problem: "must be at least queue.retry.base")) {
            try SluiceConfiguration.load(yaml: "queue: { retry: { base: 10s, max: 1s } }")
        }
    }

    @Test func durationsParse() {
        #expect(Duration(parsing: "500ms") == .milliseconds(500))
        #expect(Duration(parsing: "1.5s") == .milliseconds(1500))
        #expect(Duration(parsing: "5m") == .seconds(300))
        #expect(Duration(parsing: "24h") == .seconds(86_400))
        #expect(Duration(parsing: "7d") == .seconds(604_800))
        #expect(Duration(parsing: "30") == .seconds(30))
        #expect(Duration(parsing: "-1s") == nil)
        #expect(Duration(parsing: "fast") == nil)
    }
}
