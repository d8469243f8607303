import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SluiceCore
import SluiceHTTP
import SluiceMock
import SluiceQueue
import SluiceRedis
import SluiceScaler
import SluiceStore
import SluiceTestSupport
import SluiceWebhooks
import SluiceWorker
import Testing

/// `/v1/routes` and canaries end to end: real Redis, real HTTP on loopback, the API with its
/// route board, and (for the canaries) mock servers as providers, a worker pool and the canary
/// supervisor. Bounds are generous; nothing is timed.
@Suite(.serialized) struct RoutesAPITests {
    struct Setup {
        let queue: JobQueue
        let client: any TestClientProtocol
        let admin: String
        let submitter: String
        let board: RouteBoard

        func request(
            _ method: HTTPRequest.Method, _ uri: String, json: String? = nil, key: String? = nil
        ) async throws -> (status: HTTPResponse.Status, body: [String: Any]) {
            try await RoutedAPIClient(client: client).request(method, uri, json: json, key: key ?? admin)
        }

        /// Submits `count` jobs for `model` in one bulk; their ids.
        func bulk(_ model: String, _ count: Int) async throws -> [JobID] {
            try await RoutedAPIClient(client: client).bulk(model, count, key: submitter)
        }

        /// The lanes of `ids` as they stand, counted.
        func lanes(_ ids: [JobID]) async throws -> [String: Int] {
            var counts: [String: Int] = [:]
            for id in ids { if let job = try await queue.get(id) { counts[job.lane, default: 0] += 1 } }
            return counts
        }

        /// The route `name` as GET /v1/routes/{name} shows it.
        func route(_ name: String) async throws -> [String: Any] {
            let answer = try await request(.get, "/v1/routes/\(name)")
            #expect(answer.status == .ok, "\(answer.body)")
            return answer.body
        }

        func metrics() async throws -> String {
            let response = try await client.execute(uri: "/metrics", method: .get, headers: [:], body: nil)
            return String(buffer: response.body)
        }
    }

    static func configuration(main: String, canary: String) throws -> SluiceConfiguration {
        try SluiceConfiguration.load(yaml: """
            providers:
              mock-a: { kind: openai, base_url: "\(main)/v1", limits: { concurrency: 16 } }
              mock-b: { kind: openai, base_url: "\(canary)/v1", limits: { concurrency: 16 } }
            routes:
              split: [ { provider: mock-a, model: m, weight: 50 }, { provider: mock-b, model: m, weight: 50 } ]
              chain: [ mock-a/c, mock-b/c ]
              bad: { targets: [mock-a/bad], canary: { target: mock-b/bad, weight: 30, max_error_rate: 0.05, min_calls: 20 } }
              good: { targets: [mock-a/good], canary: { target: mock-b/good, weight: 50, max_error_rate: 0.05, min_calls: 100 } }
            """)
    }

    /// The API over a real Redis, with mock servers `main` and `canary` (the canary answering 500
    /// to `canaryErrors` of its calls); with `work`, a worker pool and the canary supervisor run.
    func withRoutes(
        canaryErrors: Double = 0, work: Bool = false, _ body: @escaping @Sendable (Setup) async throws -> Void
    ) async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-routes-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/sluice.sqlite"))
            let admin = try keys.create(tenant: "ops", scopes: [.admin]).secret
            let submitter = try keys.create(tenant: "acme", scopes: [.submit, .read]).secret
            let queue = JobQueue(redis: redis)
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            var main = MockConfiguration()
            main.latency = .fixed(.milliseconds(5))
            var canary = main
            canary.errorRate = canaryErrors
            try await withMockProvider(main) { _, a in
                try await withMockProvider(canary) { _, b in
                    let configuration = try Self.configuration(main: a, canary: b)
                    let board = RouteBoard(
                        redis: redis, routes: configuration.routes, providers: configuration.providers, prices: configuration.prices,
                        every: .milliseconds(100), logger: routesLogger)
                    let scaling = ScalingMonitor(
                        queue: queue, providers: configuration.providers,
                        pools: [ScaledPool(name: "default", definition: WorkerPoolDefinition())], logger: routesLogger)
                    let api = SluiceAPI(
                        services: .init(
                            queue: queue, waiter: waiter, keys: keys, archive: ArchiveStore(database: keys.database),
                            webhooks: WebhookStore(redis: redis, retention: queue.configuration.resultTTL), scaling: scaling,
                            routeBoard: board),
                        settings: SluiceAPI.Settings(configuration))
                    let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await board.run() }
                        if work {
                            var lanes: [String] = []
                            for route in configuration.routes.values {
                                lanes += route.targets.map(\.lane) + [route.canary?.lane].compactMap { $0 }
                            }
                            let workers = lanes.compactMap { WorkerLane.configured($0, in: configuration, concurrency: 16) }
                            let pool = WorkerPool(queue: queue, lanes: .named(workers), grace: .seconds(1), logger: routesLogger)
                            let supervisor = CanarySupervisor(
                                overrides: try #require(board.overrides), routes: configuration.routes, interval: .milliseconds(200),
                                logger: routesLogger)
                            group.addTask { try await pool.run() }
                            group.addTask { try await supervisor.run() }
                        }
                        try await app.test(.live) { client in
                            try await body(Setup(queue: queue, client: client, admin: admin, submitter: submitter, board: board))
                        }
                        group.cancelAll()
                    }
                }
            }
        }
    }

    // MARK: - The API

    @Test func getShowsEveryRouteWithItsWeightsAndCanary() async throws {
        try await withRoutes { setup in
            let answer = try await setup.request(.get, "/v1/routes")
            #expect(answer.status == .ok)
            let data = try #require(answer.body["data"] as? [[String: Any]])
            #expect(data.compactMap { $0["name"] as? String } == ["bad", "chain", "good", "split"])
            let split = try #require(data.first { $0["name"] as? String == "split" })
            #expect(split["strategy"] as? String == "weighted")
            #expect(split["overridden"] as? Bool == false)
            #expect(split["version"] as? Int == 0)
            #expect(split["canary"] is NSNull)
            let targets = try #require(split["targets"] as? [[String: Any]])
            #expect(targets.map { $0["lane"] as? String } == ["mock-a/m", "mock-b/m"])
            #expect(targets.map { $0["configured_weight"] as? Double } == [50, 50])
            #expect(targets.map { $0["weight"] as? Double } == [50, 50])
            let bad = try #require(data.first { $0["name"] as? String == "bad" })
            let canary = try #require(bad["canary"] as? [String: Any])
            #expect(canary["target"] as? String == "mock-b/bad")
            #expect(canary["weight"] as? Double == 30)
            #expect(canary["state"] as? String == "active")
            #expect(canary["min_calls"] as? Int == 20)
            #expect(canary["max_error_rate"] as? Double == 0.05)
            #expect(canary["last_rollback"] is NSNull)
            #expect(((canary["measured"] as? [String: Any])?["canary"] as? [String: Any])?["calls"] as? Int == 0)

            // Admin only.
            #expect(try await setup.request(.get, "/v1/routes", key: setup.submitter).status == .forbidden)
            #expect(try await setup.request(.patch, "/v1/routes/split", json: #"{"reset": true}"#, key: setup.submitter).status == .forbidden)
            #expect(try await setup.request(.get, "/v1/routes/split", key: setup.submitter).status == .forbidden)
            // A route's name is no secret to probe for: an unknown one is 403 too, before 404.
            #expect(try await setup.request(.get, "/v1/routes/nope", key: setup.submitter).status == .forbidden)
            #expect(try await setup.request(.patch, "/v1/routes/nope", json: #"{"reset": true}"#, key: setup.submitter).status == .forbidden)
            #expect(try await setup.request(.get, "/v1/routes/nope").status == .notFound)
            #expect(try await setup.request(.get, "/v1/routes", key: "sk_not_a_key").status == .unauthorized)
            #expect(try await setup.request(.get, "/v1/routes/nope").status == .notFound)
        }
    }

    @Test func aPatchRoutesTheVeryNextSubmitsOfThisProcessAndAResetUndoesIt() async throws {
        try await withRoutes { setup in
            let patched = try await setup.request(.patch, "/v1/routes/split", json: #"{"weights": {"mock-a/m": 100, "mock-b/m": 0}}"#)
            #expect(patched.status == .ok, "\(patched.body)")
            #expect((patched.body["targets"] as? [[String: Any]])?.map { $0["weight"] as? Double } == [100, 0])
            #expect(patched.body["overridden"] as? Bool == true)
            // At once, in this process: all 200 on one target.
            #expect(try await setup.lanes(try await setup.bulk("split", 200)) == ["mock-a/m": 200])

            // Another web process (its own board and override store) sees it within its refresh.
            let other = RouteBoard(
                redis: setup.queue.redis, routes: setup.board.routes, providers: setup.board.providers, prices: [:],
                every: .milliseconds(100), logger: routesLogger)
            try await other.overrides?.refresh()
            let route = try #require(setup.board.routes["split"])
            #expect((0..<100).allSatisfy { _ in other.choose(route, deadline: nil).lane == "mock-a/m" })

            // Weights not named keep theirs.
            _ = try await setup.request(.patch, "/v1/routes/split", json: #"{"weights": {"mock-b/m": 100}}"#)
            let both = try await setup.lanes(try await setup.bulk("split", 200))
            #expect((both["mock-a/m"] ?? 0) > 50 && (both["mock-b/m"] ?? 0) > 50, "\(both)")

            let reset = try await setup.request(.patch, "/v1/routes/split", json: #"{"reset": true}"#)
            #expect(reset.status == .ok)
            #expect(reset.body["overridden"] as? Bool == false)
            #expect((reset.body["targets"] as? [[String: Any]])?.map { $0["weight"] as? Double } == [50, 50])
            let events = try #require(reset.body["events"] as? [[String: Any]])
            #expect(events.map { $0["type"] as? String } == ["reset", "set", "set"])
            #expect((events.last?["message"] as? String)?.hasPrefix("weights mock-a/m 100, mock-b/m 0 by key sluice_") == true, "\(events)")

            // The canary's weight, by hand, and back to the configuration.
            let off = try await setup.request(.patch, "/v1/routes/bad", json: #"{"canary": {"weight": 0}}"#)
            #expect((off.body["canary"] as? [String: Any])?["state"] as? String == "off")
            #expect(try await setup.lanes(try await setup.bulk("bad", 100)) == ["mock-a/bad": 100])
            let back = try await setup.request(.patch, "/v1/routes/bad", json: #"{"reset": true}"#)
            #expect((back.body["canary"] as? [String: Any])?["weight"] as? Double == 30)
        }
    }

    /// Another web process polls every 30 s here: it sees a PATCH within seconds only through
    /// the change's announcement (pub/sub).
    @Test func anotherProcessIsNudgedByAChange() async throws {
        try await withRoutes { setup in
            let other = RouteBoard(
                redis: setup.queue.redis, routes: setup.board.routes, providers: setup.board.providers, prices: [:],
                every: .seconds(30), logger: routesLogger)
            let route = try #require(setup.board.routes["split"])
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await other.run() }
                try await Task.sleep(for: .seconds(1))  // its first read done, subscribed
                let patched = try await setup.request(.patch, "/v1/routes/split", json: #"{"weights": {"mock-a/m": 0}}"#)
                #expect(patched.status == .ok)
                // Below the 30 s poll: only pub/sub can have brought it.
                let seen = await eventually(timeout: .seconds(20)) {
                    (0..<50).allSatisfy { _ in other.choose(route, deadline: nil).lane == "mock-b/m" }
                }
                #expect(seen, "\(String(describing: other.overrides?.override("split")))")
                group.cancelAll()
            }
        }
    }

    @Test func badPatchesAreRefusedNamingTheField() async throws {
        try await withRoutes { setup in
            func refusal(_ route: String, _ json: String) async throws -> (String?, String?) {
                let answer = try await setup.request(.patch, "/v1/routes/\(route)", json: json)
                #expect(answer.status == .badRequest, "\(json): \(answer.body)")
                let error = answer.body["error"] as? [String: Any]
                return (error?["param"] as? String, error?["message"] as? String)
            }
            let unknown = try await refusal("split", #"{"weights": {"mock-a/m": 1, "mock-z/m": 1}}"#)
            #expect(unknown.0 == "weights.mock-z/m")
            #expect(unknown.1?.contains("not a target of route 'split'") == true)
            #expect(try await refusal("split", #"{"weights": {"mock-a/m": -1}}"#).0 == "weights.mock-a/m")
            #expect(try await refusal("split", #"{"weights": {"mock-a/m": 1e300}}"#).0 == "weights.mock-a/m")
            #expect(try await refusal("split", #"{"weights": {"mock-a/m": "9"}}"#).0 == "weights.mock-a/m")
            #expect(try await refusal("split", #"{"weights": {"mock-a/m": 0, "mock-b/m": 0}}"#).0 == "weights")
            #expect(try await refusal("chain", #"{"weights": {"mock-a/c": 5}}"#).0 == "weights")
            #expect(try await refusal("split", #"{"canary": {"weight": 5}}"#).0 == "canary")
            #expect(try await refusal("bad", #"{"canary": {"weight": 101}}"#).0 == "canary.weight")
            #expect(try await refusal("bad", #"{"canary": {"weight": 5, "min_calls": 3}}"#).0 == "canary.min_calls")
            #expect(try await refusal("bad", #"{"canary": {}}"#).0 == "canary.weight")
            #expect(try await refusal("split", #"{"weight": {}}"#).0 == "weight")
            #expect(try await refusal("split", #"{"reset": false}"#).0 == "reset")
            #expect(try await refusal("split", #"{"reset": true, "weights": {"mock-a/m": 1}}"#).0 == "reset")
            #expect(try await refusal("split", #"{}"#).0 == nil)
            #expect(try await refusal("split", #"{"weights": {}}"#).0 == nil)
            #expect(try await refusal("split", #"{"weights": null}"#).0 == nil)
            // Nothing was stored.
            #expect(try await setup.route("split")["version"] as? Int == 0)
            #expect(try await setup.route("bad")["version"] as? Int == 0)
        }
    }

    // MARK: - Canaries

    /// The canary answers 500 to half its calls: with min_calls 20 its weight goes to 0 by
    /// itself, the route says why, the metrics say so, and later jobs all go to the main target.
    @Test func aFailingCanaryIsRolledBackByItself() async throws {
        try await withRoutes(canaryErrors: 0.5, work: true) { setup in
            var ids: [JobID] = []
            var state = ""
            let rolledBack = try await eventually {
                if ids.count < 2_000 { ids += try await setup.bulk("bad", 40) }
                let canary = try await setup.route("bad")["canary"] as? [String: Any]
                state = canary?["state"] as? String ?? ""
                return state == "rolled_back"
            }
            #expect(rolledBack, "canary state \(state) after \(ids.count) jobs")
            let route = try await setup.route("bad")
            let canary = try #require(route["canary"] as? [String: Any])
            #expect(canary["weight"] as? Double == 0)
            #expect(canary["configured_weight"] as? Double == 30)
            #expect(canary["rollbacks"] as? Int == 1)
            let rollback = try #require(canary["last_rollback"] as? [String: Any])
            #expect(rollback["target"] as? String == "mock-b/bad")
            #expect(((rollback["canary"] as? [String: Any])?["error_rate"] as? Double ?? 0) > 0.05, "\(rollback)")
            #expect(((rollback["main"] as? [String: Any])?["error_rate"] as? Double ?? 1) <= 0.05, "\(rollback)")
            let events = try #require(route["events"] as? [[String: Any]])
            #expect(events.first?["type"] as? String == "rolled_back")
            #expect((events.first?["message"] as? String)?.hasPrefix("canary mock-b/bad rolled back: ") == true, "\(events)")

            let metrics = try await setup.metrics()
            #expect(metrics.contains(#"sluice_route_canary_weight{route="bad",target="mock-b/bad"} 0.0"# + "\n"), "\(metrics.split(separator: "\n").filter { $0.contains("route") })")
            #expect(metrics.contains(#"sluice_route_rollbacks_total{route="bad"} 1"# + "\n"))

            // It stays at 0: every later job goes to the main target.
            let later = try await setup.bulk("bad", 200)
            #expect(try await setup.lanes(later) == ["mock-a/bad": 200])
            // And the supervisor does not roll it back twice.
            try await Task.sleep(for: .seconds(1))
            #expect((try await setup.route("bad")["canary"] as? [String: Any])?["rollbacks"] as? Int == 1)
        }
    }

    /// A canary failing 1% of its calls (under its 5% bound) keeps its weight once it has made
    /// well over its min_calls.
    @Test func aHealthyCanaryIsKept() async throws {
        try await withRoutes(canaryErrors: 0.01, work: true) { setup in
            var ids: [JobID] = []
            var calls = 0
            let measured = try await eventually {
                if ids.count < 3_000 { ids += try await setup.bulk("good", 50) }
                let canary = try await setup.route("good")["canary"] as? [String: Any]
                calls = ((canary?["measured"] as? [String: Any])?["canary"] as? [String: Any])?["calls"] as? Int ?? 0
                return calls >= 100
            }
            #expect(measured, "the canary made \(calls) calls")
            // A few more checks of the supervisor (every 200 ms) over a full window.
            try await Task.sleep(for: .seconds(1))
            let canary = try #require(try await setup.route("good")["canary"] as? [String: Any])
            #expect(canary["state"] as? String == "active")
            #expect(canary["weight"] as? Double == 50)
            #expect(canary["rollbacks"] as? Int == 0)
        }
    }
}

private let routesLogger: Logger = {
    var logger = Logger(label: "sluice.test.routes")
    logger.logLevel = .warning
    return logger
}()
