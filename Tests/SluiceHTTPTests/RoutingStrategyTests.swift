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
import SluiceStore
import SluiceTestSupport
import SluiceWebhooks
import SluiceWorker
import Testing

/// Routes that choose by what is measured, end to end: three mock servers as three providers
/// (mock-a fast and wide, mock-b slower, mock-c slow and narrow), the API with its route board,
/// a worker pool, real Redis and real HTTP. Bounds are generous; nothing is timed.
// In the Makefile's HEAVY list: only when SLUICE_TEST_E2E is set (make test sets it and runs this suite alone).
@Suite(.serialized, .enabled(if: TestGate.endToEnd, "needs a quiet machine: `make test` runs it alone, or `SLUICE_TEST_E2E=1 swift test --filter RoutingStrategyTests`")) struct RoutingStrategyTests {
    struct Setup {
        let queue: JobQueue
        let redis: RedisClient
        let client: any TestClientProtocol
        let key: String
        let board: RouteBoard

        func request(_ method: HTTPRequest.Method, _ uri: String, json: String? = nil) async throws -> (status: HTTPResponse.Status, body: [String: Any]) {
            try await RoutedAPIClient(client: client).request(method, uri, json: json, key: key)
        }

        /// Submits `count` jobs for `model` in one bulk; their ids.
        func bulk(_ model: String, _ count: Int) async throws -> [JobID] {
            try await RoutedAPIClient(client: client).bulk(model, count, key: key)
        }

        /// Waits until every job has succeeded; their lanes.
        func lanes(_ ids: [JobID], timeout: Duration = .seconds(60)) async throws -> [String: Int] {
            var jobs: [Job] = []
            let done = try await eventually(timeout: timeout) {
                jobs = try await ids.asyncMap { try await queue.get($0) }.compactMap { $0 }
                return jobs.count == ids.count && jobs.allSatisfy { $0.state == .succeeded }
            }
            #expect(done, "\(jobs.filter { $0.state != .succeeded }.count) of \(ids.count) jobs did not succeed")
            return jobs.reduce(into: [:]) { $0[$1.lane, default: 0] += 1 }
        }

        /// The first timeline entry's note, as GET /v1/jobs/{id}/events shows it.
        func why(_ id: JobID) async throws -> String {
            let events = try await request(.get, "/v1/jobs/\(id)/events")
            return ((events.body["data"] as? [[String: Any]])?.first?["info"] as? String) ?? ""
        }
    }

    static func configuration(a: String, b: String, c: String) throws -> SluiceConfiguration {
        try SluiceConfiguration.load(yaml: """
            providers:
              mock-a: { kind: openai, base_url: "\(a)/v1", limits: { concurrency: 16 } }
              mock-b: { kind: openai, base_url: "\(b)/v1", limits: { concurrency: 16 } }
              mock-c: { kind: openai, base_url: "\(c)/v1", limits: { concurrency: 4 } }
              cheap: { kind: openai, base_url: "\(c)/v1", limits: { rpm: 6 } }
              dear: { kind: openai, base_url: "\(a)/v1" }
            prices:
              small: { input: 0.15, output: 0.60 }
              large: { input: 2.50, output: 10 }
            routes:
              support: { strategy: least_busy, targets: [mock-a/spread, mock-b/spread, mock-c/spread] }
              quick: { strategy: latency, targets: [mock-a/quick, mock-b/quick, mock-c/quick] }
              thrifty: { strategy: cost, targets: [dear/large, cheap/small] }
            """)
    }

    func withRouting(_ body: @escaping @Sendable (Setup) async throws -> Void) async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-routing-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/sluice.sqlite"))
            let key = try keys.create(tenant: "acme", scopes: [.submit, .read]).secret
            let queue = JobQueue(redis: redis)
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            var fast = MockConfiguration()
            fast.latency = .fixed(.milliseconds(20))
            var middling = MockConfiguration()
            middling.latency = .fixed(.milliseconds(80))
            var slow = MockConfiguration()
            slow.latency = .fixed(.milliseconds(300))
            try await withMockProvider(fast) { _, a in
                try await withMockProvider(middling) { _, b in
                    try await withMockProvider(slow) { _, c in
                        let configuration = try Self.configuration(a: a, b: b, c: c)
                        let board = RouteBoard(
                            redis: redis, routes: configuration.routes, providers: configuration.providers, prices: configuration.prices,
                            every: .milliseconds(100), logger: routingLogger)
                        let api = SluiceAPI(
                            services: .init(
                                queue: queue, waiter: waiter, keys: keys, archive: ArchiveStore(database: keys.database),
                                webhooks: WebhookStore(redis: redis, retention: queue.configuration.resultTTL), routeBoard: board),
                            settings: SluiceAPI.Settings(configuration))
                        let lanes = configuration.routes.values.flatMap { $0.targets.map(\.lane) }.compactMap {
                            WorkerLane.configured($0, in: configuration, concurrency: 16)
                        }
                        let pool = WorkerPool(queue: queue, lanes: .named(lanes), grace: .seconds(1), logger: routingLogger)
                        let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask { try await pool.run() }
                            group.addTask { try await board.run() }
                            try await app.test(.live) { client in
                                try await body(Setup(queue: queue, redis: redis, client: client, key: key, board: board))
                            }
                            group.cancelAll()
                        }
                    }
                }
            }
        }
    }

    /// 300 jobs in one bulk over capacities 16, 16 and 4: spread by free capacity, the narrow
    /// one least; each job's timeline says where it went and why.
    @Test func leastBusySpreadsABurstByCapacity() async throws {
        try await withRouting { setup in
            let ids = try await setup.bulk("support", 300)
            #expect(ids.count == 300)
            let lanes = try await setup.lanes(ids)
            let counts = ["mock-a/spread", "mock-b/spread", "mock-c/spread"].map { lanes[$0] ?? 0 }
            #expect(counts.reduce(0, +) == 300, "\(lanes)")
            #expect(counts[2] >= 10 && counts[0] > 2 * counts[2] && counts[1] > 2 * counts[2], "\(lanes)")
            let why = try await setup.why(ids[0])
            #expect(why.hasPrefix("route support (least_busy): mock-"), "\(why)")
            #expect(why.contains(" free ("), "\(why)")
        }
    }

    /// After a warm-up that measures every target, most jobs go to the fastest, some still to
    /// the others (exploration).
    @Test func latencySendsMostJobsToTheFastestAndStillExplores() async throws {
        try await withRouting { setup in
            // Warm-up: a job at a time, until each lane's figure is in Redis and read.
            var warmUp: [JobID] = []
            let measured = try await eventually(timeout: .seconds(30)) {
                warmUp += try await setup.bulk("quick", 1)
                try await Task.sleep(for: .milliseconds(100))
                return setup.board.conditions.lanes.filter { $0.key.hasSuffix("/quick") && $0.value.latencyMs != nil }.count == 3
            }
            #expect(measured, "\(setup.board.conditions.lanes)")
            _ = try await setup.lanes(warmUp)
            let fastest = setup.board.conditions.lanes["mock-a/quick"]?.latencyMs ?? 0
            let slowest = setup.board.conditions.lanes["mock-c/quick"]?.latencyMs ?? 0
            #expect(fastest < slowest, "mock-a \(fastest) ms, mock-c \(slowest) ms")

            var ids: [JobID] = []
            for _ in 0..<20 {
                ids += try await setup.bulk("quick", 10)
                try await Task.sleep(for: .milliseconds(50))
            }
            let lanes = try await setup.lanes(ids)
            let a = lanes["mock-a/quick", default: 0]
            #expect(a >= 140, "\(lanes)")
            #expect(a < 200, "no exploration: \(lanes)")
            var whys: [String] = []
            for id in ids { whys.append(try await setup.why(id)) }
            #expect(whys.contains { $0.hasPrefix("route quick (latency): mock-a/quick, p50 ") }, "\(whys.prefix(3))")
            #expect(whys.contains { $0.contains("exploring") }, "\(Set(whys).prefix(5))")
        }
    }

    /// The cheap target (6 requests a minute) takes a job with a minute to spare; a job due in
    /// five seconds goes to the dear one, whose slots are free; the notes say why.
    @Test func costTakesTheCheapOneUnlessTheDeadlineForbids() async throws {
        try await withRouting { setup in
            let now = Int(Date().timeIntervalSince1970)
            func submit(deadline: Int?) async throws -> JobID {
                let due = deadline.map { #", "deadline": \#(now + $0)"# } ?? ""
                let answer = try await setup.request(
                    .post, "/v1/jobs", json: #"{"model": "thrifty", "request": {"model": "x", "messages": [{"role": "user", "content": "hi"}]}\#(due)}"#)
                #expect(answer.status == .accepted, "\(answer.body)")
                return try #require((answer.body["id"] as? String).flatMap(JobID.init))
            }
            let open = try await submit(deadline: nil)
            let roomy = try await submit(deadline: 120)
            let tight = try await submit(deadline: 5)
            let jobs = try await [open, roomy, tight].asyncMap { id in try await setup.lanes([id]).keys.first ?? "" }
            #expect(jobs == ["cheap/small", "cheap/small", "dear/large"])
            #expect(try await setup.why(open) == "route thrifty (cost): cheap/small at $0.75/Mtok (dear/large $12.50/Mtok)")
            let note = try await setup.why(tight)
            #expect(note.hasPrefix("route thrifty (cost): dear/large at $12.50/Mtok, done in ~1 s of "), "\(note)")
        }
    }
}

private let routingLogger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    return logger
}()
