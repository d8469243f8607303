import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SluiceCore
import SluiceHTTP
import SluiceMock
import SluiceProviders
import SluiceQueue
import SluiceScaler
import SluiceStore
import SluiceTestSupport
import SluiceWebhooks
import SluiceWorker
import Testing

/// The response cache's defaults per route and per key, and the cache on the facade's inline
/// path: real redis-server, the mock provider as a server (its counts say which jobs called it),
/// real HTTP, a worker pool for queued jobs and inline calls for the facade.
@Suite struct CacheDefaultsTests {
    static let lane = FacadeHarness.lane

    struct Setup {
        let queue: JobQueue
        let client: any TestClientProtocol
        let admin: String
        let mock: MockProvider
        /// The archive and usage ledger the API reads.
        let archive: ArchiveStore

        func request(_ method: HTTPRequest.Method, _ uri: String, key: String, json: String? = nil) async throws -> (
            status: HTTPResponse.Status, body: [String: Any]
        ) {
            var fields: HTTPFields = [.authorization: "Bearer \(key)"]
            if json != nil { fields[.contentType] = "application/json" }
            let response = try await client.execute(uri: uri, method: method, headers: fields, body: json.map { ByteBuffer(string: $0) })
            return (response.status, (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:])
        }

        /// A new key of tenant acme (through POST /v1/keys), with `cache` when given.
        func key(cache: String? = nil) async throws -> (secret: String, prefix: String, document: [String: Any]) {
            let extra = cache.map { #", "cache": \#($0)"# } ?? ""
            let created = try await request(.post, "/v1/keys", key: admin, json: #"{"tenant": "acme", "scopes": ["submit", "read"]\#(extra)}"#)
            #expect(created.status == .created, "\(created.body)")
            return (try #require(created.body["key"] as? String), try #require(created.body["prefix"] as? String), created.body)
        }

        /// Submits a chat job through `model` (a route) and waits for it; returns how it ended:
        /// `cached`/`coalesced` when answered from the cache, else `called`.
        func run(_ model: String, key: String, question: String = "q1", cache: String? = nil) async throws -> String {
            let field = cache.map { #", "cache": \#($0)"# } ?? ""
            let body = #"{"model": "\#(model)", "request": {"model": "x", "temperature": 0, "messages": [{"role": "user", "content": "\#(question)"}], "max_tokens": 8}\#(field)}"#
            let submitted = try await request(.post, "/v1/jobs", key: key, json: body)
            #expect(submitted.status == .accepted, "\(submitted.body)")
            let id = try #require((submitted.body["id"] as? String).flatMap(JobID.init))
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                if let job = try await queue.get(id), job.state.isTerminal {
                    #expect(job.state == .succeeded)
                    let info = try await queue.timeline(id)?.last { $0.state == .succeeded }?.info ?? ""
                    return info == "cached" || info == "coalesced" ? info : "called"
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            Issue.record("job \(id) did not finish within 30 s")
            return "unfinished"
        }

        /// A facade chat call (on a connection of its own) with `headers`: its status, body and job.
        func chat(_ model: String, headers: [String: String] = [:]) async throws -> (status: Int, body: Data, job: String?) {
            try await Self.chat(port: client.port!, key: admin, model, headers: headers)
        }

        static func chat(port: Int, key admin: String, _ model: String, headers: [String: String] = [:]) async throws -> (
            status: Int, body: Data, job: String?
        ) {
            try await FacadeHarness.chat(
                port: port, key: admin,
                body: #"{"model": "\#(model)", "temperature": 0, "messages": [{"role": "user", "content": "facade"}], "max_tokens": 8}"#,
                headers: headers)
        }
    }

    /// The API with routes `cached` (`cache: {ttl: 1h}`) and `plain` (no cache), both to one
    /// lane on the mock; the config's defaults leave the cache off.
    func withCacheAPI(mock configuration: MockConfiguration = MockConfiguration(), _ body: @escaping @Sendable (Setup) async throws -> Void) async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-cache-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/sluice.sqlite"))
            let admin = try keys.create(tenant: "acme", scopes: [.admin]).secret
            let queue = JobQueue(redis: redis)
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            try await withMockProvider(configuration) { mock, base in
                var provider = SluiceConfiguration.Provider(name: "mock", kind: "openai", baseURL: base + "/v1")
                provider.models = ["gpt-4o-mini"]
                var cached = SluiceConfiguration.Route(name: "cached", targets: [.init(provider: "mock", model: "gpt-4o-mini")])
                cached.cache = ResponseCacheDefault(ttl: .seconds(3600))
                let plain = SluiceConfiguration.Route(name: "plain", targets: [.init(provider: "mock", model: "gpt-4o-mini")])
                var settings = SluiceAPI.Settings()
                settings.providers = ["mock": provider]
                settings.routes = ["cached": cached, "plain": plain]
                settings.cache.routes = ["cached": try #require(cached.cache)]
                let workerLane = FacadeHarness.mockLane(base)
                let archive = ArchiveStore(database: keys.database)
                let scaling = ScalingMonitor(
                    queue: queue, providers: settings.providers, pools: [ScaledPool(name: "default", definition: WorkerPoolDefinition())],
                    logger: cacheTestLogger)
                let pool = WorkerPool(queue: queue, lanes: .named([workerLane]), grace: .seconds(1), logger: cacheTestLogger)
                let maintenance = QueueMaintenance(queue: queue, logger: cacheTestLogger)
                try await FacadeHarness.withInlineAPI(
                    queue: queue, waiter: waiter, keys: keys, archive: archive, settings: settings, lane: workerLane, inlineLimit: 16,
                    scaling: scaling, logger: cacheTestLogger,
                    beside: { inline in
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask { try await pool.run() }
                            group.addTask { try await maintenance.run() }
                            group.addTask { await inline.keepLeases() }
                            try await group.waitForAll()
                        }
                    }
                ) { client in
                    try await body(Setup(queue: queue, client: client, admin: admin, mock: mock, archive: archive))
                }
            }
        }
    }

    /// The config: a route's `cache:` and `cache.keys`, each `false`, `true` or `{ttl, all}`;
    /// the layers' precedence (job > key > route > `cache:` defaults) and which members each sets.
    @Test func theConfigsRouteAndKeySettingsAndTheirPrecedence() throws {
        let yaml = """
            providers:
              openai: { kind: openai, base_url: "http://127.0.0.1:9/v1" }
            cache:
              ttl: 2h
              keys: { sluice_offoffof: false, sluice_allallal: { all: true } }
            routes:
              cheap: { targets: [openai/gpt-4o-mini], cache: { ttl: 10m } }
              fresh: { targets: [openai/gpt-4o-mini], cache: false }

            """
        let configuration = try SluiceConfiguration.load(yaml: yaml)
        let settings = configuration.cache
        #expect(settings.routes["cheap"] == ResponseCacheDefault(ttl: .seconds(600)))
        #expect(settings.routes["fresh"] == .off)
        #expect(settings.keys["sluice_offoffof"] == .off && settings.keys["sluice_allallal"] == ResponseCacheDefault(all: true))
        // No key setting: the route decides; its ttl over the config's.
        #expect(try settings.policy(for: nil, route: "cheap") == ResponseCachePolicy(ttl: .seconds(600)))
        #expect(try settings.policy(for: nil, route: "fresh") == nil)
        #expect(try settings.policy(for: nil, route: nil) == nil)
        // A key's false beats the route; the job's own value beats both, over the layers' members.
        let off = settings.forKey(prefix: "sluice_offoffof", own: nil)
        #expect(try off.policy(for: nil, route: "cheap") == nil)
        #expect(try off.policy(for: .bool(true), route: "cheap") == ResponseCachePolicy(ttl: .seconds(600)))
        let all = settings.forKey(prefix: "sluice_allallal", own: nil)
        #expect(try all.policy(for: nil, route: "fresh") == ResponseCachePolicy(ttl: .seconds(7200), all: true))
        #expect(try all.policy(for: .bool(false), route: "cheap") == nil)
        #expect(try all.policy(for: ["ttl": "1h"], route: "cheap") == ResponseCachePolicy(ttl: .seconds(3600), all: true))
        // A key's own setting (through /v1/keys) wins over the config's entry for it.
        #expect(try settings.forKey(prefix: "sluice_offoffof", own: ResponseCacheDefault()).policy(for: nil) == ResponseCachePolicy(ttl: .seconds(7200)))
        // Bad values name the setting.
        for (bad, key) in [
            ("cache: { keys: { k: yes please } }", "cache.keys.k"), ("cache: { keys: { k: { ttl: 0s } } }", "cache.keys.k.ttl"),
            ("routes: { r: { targets: [openai], cache: { color: 1 } } }", "routes.r.cache.color"),
        ] {
            #expect(throws: ConfigurationError.self, "\(bad)") {
                try SluiceConfiguration.load(yaml: "providers: { openai: { kind: openai, base_url: \"http://127.0.0.1:9/v1\" } }\n" + bad)
            }
            do { _ = try SluiceConfiguration.load(yaml: "providers: { openai: { kind: openai, base_url: \"http://127.0.0.1:9/v1\" } }\n" + bad) } catch {
                #expect(error.key == key, "\(bad): \(error)")
            }
        }
        // The stored form reads back as it was.
        for setting in [
            ResponseCacheDefault.off, ResponseCacheDefault(), ResponseCacheDefault(ttl: .seconds(90), all: false),
            ResponseCacheDefault(ttl: .milliseconds(1500)), ResponseCacheDefault(ttl: .seconds(1.0005)),
        ] {
            #expect(ResponseCacheDefault(text: setting.text) == setting)
        }
    }

    /// A route with `cache:` serves the second identical job from the cache; a key with
    /// `cache: false` does not; a job's own `cache` beats both; a key's setting set later
    /// through PATCH /v1/keys applies to a route without one.
    @Test func routeAndKeyDefaultsApplyAndTheJobsOwnCacheWins() async throws {
        try await withCacheAPI { setup in
            let plainKey = try await setup.key()
            let offKey = try await setup.key(cache: "false")
            #expect(offKey.document["cache"] as? Bool == false)
            #expect(plainKey.document["cache"] is NSNull)

            #expect(try await setup.run("cached", key: plainKey.secret) == "called")
            #expect(try await setup.run("cached", key: plainKey.secret) == "cached")
            #expect(setup.mock.stats().received == 1)
            // The same request through a route without a cache: the config's defaults (off) apply.
            #expect(try await setup.run("plain", key: plainKey.secret) == "called")
            #expect(setup.mock.stats().received == 2)
            // The key says false: the route's cache does not apply to its jobs...
            #expect(try await setup.run("cached", key: offKey.secret) == "called")
            #expect(setup.mock.stats().received == 3)
            // ...unless the job asks; and a job's false beats the route.
            #expect(try await setup.run("cached", key: offKey.secret, cache: "true") == "cached")
            #expect(try await setup.run("cached", key: plainKey.secret, cache: "false") == "called")
            #expect(setup.mock.stats().received == 4)

            // The key turned on later (PATCH): its jobs are cached through a route without a cache.
            let patched = try await setup.request(.patch, "/v1/keys/\(offKey.prefix)", key: setup.admin, json: #"{"cache": {"ttl": "2h"}}"#)
            #expect(patched.status == .ok)
            #expect((patched.body["cache"] as? [String: Any])?["ttl"] as? Int == 7200)
            #expect(try await setup.run("plain", key: offKey.secret) == "cached")
            #expect(setup.mock.stats().received == 4)
            // A bad value is a 400 naming the member.
            let bad = try await setup.request(.patch, "/v1/keys/\(offKey.prefix)", key: setup.admin, json: #"{"cache": {"ttl": "soon"}}"#)
            #expect(bad.status == .badRequest)
            #expect((bad.body["error"] as? [String: Any])?["param"] as? String == "cache.ttl")
        }
    }

    /// The facade's inline path: an identical call through a route with `cache:` is answered
    /// from the cache (the mock is not called again), with the first call's answer; the call's
    /// own `X-Sluice-Cache: false` calls the provider.
    @Test func anIdenticalFacadeCallIsAnsweredFromTheCache() async throws {
        try await withCacheAPI { setup in
            let first = try await setup.chat("cached")
            #expect(first.status == 200)
            #expect(setup.mock.stats().received == 1)
            let second = try await setup.chat("cached")
            #expect(second.status == 200)
            #expect(second.body == first.body)
            #expect(second.job != nil && second.job != first.job)
            #expect(setup.mock.stats().received == 1)
            let id = try #require(second.job.flatMap(JobID.init))
            #expect(try await setup.queue.timeline(id)?.last { $0.state == .succeeded }?.info == "cached")
            let busted = try await setup.chat("cached", headers: ["X-Sluice-Cache": "false"])
            #expect(busted.status == 200)
            #expect(setup.mock.stats().received == 2)
            // Through a route without a cache, the call's own header turns it on (another body,
            // `model` names the route: another key).
            let asked = try await setup.chat("plain", headers: ["X-Sluice-Cache": "true"])
            #expect(try await setup.chat("plain", headers: ["X-Sluice-Cache": "{\"ttl\": \"1h\"}"]).body == asked.body)
            #expect(try await setup.chat("plain").status == 200)
            #expect(setup.mock.stats().received == 4)
            #expect(try await setup.chat("cached", headers: ["X-Sluice-Cache": "{\"ttl\": 0}"]).status == 400)
            // Another tenant's identical call, whatever its header asks, is its own call (the
            // header sets ttl and all, never the scope); its next one is answered from its own.
            let created = try await setup.request(.post, "/v1/keys", key: setup.admin, json: #"{"tenant": "globex", "scopes": ["submit", "read"]}"#)
            let other = try #require(created.body["key"] as? String)
            var infos: [String] = []
            for header in [#"{"ttl": "1h", "all": true}"#, "true"] {
                let theirs = try await Setup.chat(port: setup.client.port!, key: other, "cached", headers: ["X-Sluice-Cache": header])
                #expect(theirs.status == 200)
                let id = try #require(theirs.job.flatMap(JobID.init))
                infos.append(try await setup.queue.timeline(id)?.last { $0.state == .succeeded }?.info ?? "")
            }
            #expect(infos.first != "cached" && infos.first != "coalesced" && infos.last == "cached", "\(infos)")
            #expect(setup.mock.stats().received == 5)
        }
    }

    /// /metrics shows the dollars the ledger says were saved, by the cache and by provider batches.
    @Test func metricsShowTheLedgersDollarsSaved() async throws {
        try await withCacheAPI { setup in
            func job(_ id: String, cost: Double) -> ArchivedJob {
                ArchivedJob(
                    id: id, tenant: "acme", keyID: 1, lane: Self.lane, state: "succeeded", createdAt: .current(), finishedAt: .current(),
                    batch: nil, customID: nil, model: "gpt-4o-mini", inputTokens: 1000, outputTokens: 500, cost: cost, record: [])
            }
            var cached = job("job_cached", cost: 0)
            cached.cached = true
            cached.savedUSD = 0.0675
            var batched = job("job_batched", cost: 0.00375)
            batched.batched = true
            batched.batchSavedUSD = 0.00375
            try await setup.archive.archive([cached, batched])
            let response = try await setup.client.execute(uri: "/metrics", method: .get, headers: [:], body: nil)
            #expect(response.status == .ok)
            let text = String(buffer: response.body)
            for line in ["sluice_cache_saved_usd 0.0675", "sluice_batch_saved_usd 0.00375"] {
                #expect(text.contains(line + "\n"), "\(line) not in \(text)")
            }
        }
    }

    /// Identical facade calls at once, on a slow provider: one reaches it; the others wait for
    /// its answer (given back to the lane and answered from the cache when it is stored, by the
    /// workers) or find it stored. Each call gets the one answer, under its own job.
    @Test func identicalFacadeCallsAtOnceShareOneProviderCall() async throws {
        var slow = MockConfiguration()
        slow.latency = .fixed(.milliseconds(700))
        try await withCacheAPI(mock: slow) { setup in
            let port = setup.client.port!
            let admin = setup.admin
            let answers = try await withThrowingTaskGroup(of: (status: Int, body: Data, job: String?).self) { group in
                for _ in 0..<4 { group.addTask { try await Setup.chat(port: port, key: admin, "cached", headers: ["X-Sluice-Wait": "30"]) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.allSatisfy { $0.status == 200 }, "\(answers.map(\.status))")
            #expect(Set(answers.map(\.body)).count == 1)
            #expect(Set(answers.compactMap(\.job)).count == 4)
            #expect(setup.mock.stats().received == 1)
        }
    }
}

private let cacheTestLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .error
    return logger
}()
