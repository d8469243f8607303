import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceHTTP
import SluiceProcess
import SluiceQueue
import Logging
import SluiceRedis
import SluiceScaler
import SluiceStore
import SluiceTestSupport
import SluiceWebhooks
import Testing

/// Everything one HTTP test needs: the API on a live loopback server, over a real redis-server
/// and a real SQLite file, with keys for two tenants.
struct Fixture {
    let queue: JobQueue
    /// The redis-server under the queue (tests may stop it).
    let server: RedisServerProcess
    let client: any TestClientProtocol
    let acme: String  // submit, read
    let acmeReader: String  // read only
    let globex: String  // submit, read
    let admin: String
    /// The routes the server runs, as "METHOD /path/:capture".
    let routes: [String]
    /// The scaling monitor behind /v1/scaling and /metrics (not running: tests call `tick`).
    let scaling: ScalingMonitor

    func request(
        _ method: HTTPRequest.Method, _ uri: String, key: String?, json: String? = nil, headers: HTTPFields = [:]
    ) async throws -> (status: HTTPResponse.Status, body: [String: Any], headers: HTTPFields) {
        var fields = headers
        if let key { fields[.authorization] = "Bearer \(key)" }
        if json != nil && fields[.contentType] == nil { fields[.contentType] = "application/json" }
        let response = try await client.execute(
            uri: uri, method: method, headers: fields, body: json.map { ByteBuffer(string: $0) })
        let body = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
        return (response.status, body, response.headers)
    }
}

func withAPI(
    maxParkedPerKey: Int = 256, maxAdHocLanes: Int = 100, pipelines: [String: Pipeline] = [:],
    _ body: @escaping @Sendable (Fixture) async throws -> Void
) async throws {
    try await withRedis { server, redis in
        let directory = NSTemporaryDirectory() + "sluice-http-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/sluice.sqlite"))
        let queue = JobQueue(redis: redis)
        let waiter = JobWaiter(queue: queue)
        defer { waiter.close() }
        // acme may use priorities up to 10; globex has the default max_priority (0).
        let acme = try keys.create(tenant: "acme", scopes: [.submit, .read], limits: KeyLimits(maxPriority: 10)).secret
        let reader = try keys.create(tenant: "acme", scopes: [.read]).secret
        let globex = try keys.create(tenant: "globex", scopes: [.submit, .read]).secret
        let admin = try keys.create(tenant: "ops", scopes: [.admin]).secret
        // Only configured providers' lanes are accepted: the tests' lanes are these providers'.
        var providers = ["mock": SluiceConfiguration.Provider(
            name: "mock", kind: "openai", baseURL: "http://127.0.0.1:9/v1", limits: .init(requestsPerMinute: 60, concurrency: 4))]
        for name in ["demo", "bulk", "other", "openai"] {
            providers[name] = SluiceConfiguration.Provider(name: name, kind: "openai", baseURL: "http://127.0.0.1:9/v1")
        }
        let modelRoutes = ["split": SluiceConfiguration.Route(name: "split", targets: [
            .init(provider: "mock", model: "a", weight: 90), .init(provider: "mock", model: "b", weight: 10),
        ])]
        // Callbacks to loopback are let through (the SSRF guard refuses them otherwise; and a public
        // name would need DNS, which CI does not have).
        let scaling = ScalingMonitor(
            queue: queue, providers: providers, pools: [ScaledPool(name: "default", definition: WorkerPoolDefinition())],
            logger: Logger(label: "test"))
        var settings = SluiceAPI.Settings()
        settings.providers = providers
        settings.routes = modelRoutes
        settings.maxParkedPerKey = maxParkedPerKey
        settings.maxAdHocLanes = maxAdHocLanes
        settings.pipelines = pipelines
        let api = SluiceAPI.testing(
            queue: queue, waiter: waiter, keys: keys, addressGuard: AddressGuard(allowed: [CIDR("127.0.0.0/8")!]), scaling: scaling,
            settings: settings)
        let router = api.router()
        let routes = router.routes.map { "\($0.method.rawValue) \($0.path)" }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            try await body(
                Fixture(
                    queue: queue, server: server, client: client, acme: acme, acmeReader: reader, globex: globex, admin: admin,
                    routes: routes, scaling: scaling))
        }
    }
}

let simpleJob = #"{"lane": "demo", "request": {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}}"#

@Suite struct JobRoutesTests {
    @Test func submittedJobCanBeReadBackByItsTenant() async throws {
        try await withAPI { api in
            let submitted = try await api.request(
                .post, "/v1/jobs", key: api.acme,
                json: #"{"provider": "openai", "model": "gpt-4o-mini", "request": {"x": 1}, "priority": 5, "max_attempts": 2, "metadata": {"run": "r1"}, "callback_url": "http://127.0.0.1:9/hook"}"#)
            #expect(submitted.status == .accepted)
            let id = try #require(submitted.body["id"] as? String)
            #expect(submitted.body["status"] as? String == "queued")
            #expect((submitted.body["links"] as? [String: String])?["self"] == "/v1/jobs/\(id)")

            let read = try await api.request(.get, "/v1/jobs/\(id)", key: api.acmeReader)
            #expect(read.status == .ok)
            #expect(read.body["lane"] as? String == "openai/gpt-4o-mini")
            #expect(read.body["priority"] as? Int == 5)
            #expect(read.body["max_attempts"] as? Int == 2)
            #expect((read.body["request"] as? [String: Int])?["x"] == 1)
            #expect((read.body["metadata"] as? [String: String])?["run"] == "r1")
            #expect(read.body["callback_url"] as? String == "http://127.0.0.1:9/hook")
            #expect(read.headers[.contentType] == "application/json")
        }
    }

    @Test func anotherTenantsJobIsNotFoundButAdminSeesIt() async throws {
        try await withAPI { api in
            let id = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            let stranger = try await api.request(.get, "/v1/jobs/\(id)", key: api.globex)
            #expect(stranger.status == .notFound)
            #expect((stranger.body["error"] as? [String: String])?["type"] == "not_found")
            #expect(try await api.request(.post, "/v1/jobs/\(id)/cancel", key: api.globex).status == .notFound)
            #expect(try await api.request(.get, "/v1/jobs/\(id)?wait=1", key: api.globex).status == .notFound)
            #expect(try await api.request(.get, "/v1/jobs/\(id)", key: api.admin).status == .ok)
            #expect(try await api.request(.get, "/v1/jobs/job_nonsense", key: api.acme).status == .notFound)
        }
    }

    @Test func missingInvalidAndUnderScopedKeysAreRefused() async throws {
        try await withAPI { api in
            let none = try await api.request(.post, "/v1/jobs", key: nil, json: simpleJob)
            #expect(none.status == .unauthorized)
            #expect((none.body["error"] as? [String: String])?["type"] == "authentication")
            #expect(none.headers[.wwwAuthenticate] == "Bearer")
            let bad = try await api.request(.post, "/v1/jobs", key: api.acme + "x", json: simpleJob)
            #expect(bad.status == .unauthorized)
            let readOnly = try await api.request(.post, "/v1/jobs", key: api.acmeReader, json: simpleJob)
            #expect(readOnly.status == .forbidden)
            #expect((readOnly.body["error"] as? [String: String])?["message"]?.contains("'submit'") == true)
            // No key needed for health.
            #expect(try await api.request(.get, "/healthz", key: nil).status == .ok)
            #expect(try await api.request(.get, "/readyz", key: nil).body["status"] as? String == "ready")
        }
    }

    @Test func badBodiesAre4xxNamingTheField() async throws {
        try await withAPI { api in
            func error(_ json: String) async throws -> (HTTPResponse.Status, [String: String]) {
                let response = try await api.request(.post, "/v1/jobs", key: api.acme, json: json)
                return (response.status, response.body["error"] as? [String: String] ?? [:])
            }
            var (status, body) = try await error(#"{"lane": "demo", "request": {}, "max_attempt": 3}"#)
            #expect(status == .badRequest && body["param"] == "max_attempt" && body["type"] == "invalid_request")
            (status, body) = try await error(#"{"lane": "demo"}"#)
            #expect(status == .badRequest && body["param"] == "request")
            (status, body) = try await error(#"{"request": {}}"#)
            #expect(status == .badRequest && body["param"] == "lane")
            (status, body) = try await error(#"{"lane": "demo", "request": {}, "priority": true}"#)
            #expect(status == .badRequest && body["param"] == "priority")
            (status, body) = try await error(#"{"lane": "demo", "request": {}, "priority": 500}"#)
            #expect(status == .badRequest && body["param"] == "priority")
            (status, body) = try await error(#"{"lane": "demo", "request": {}, "callback_url": "ftp://x"}"#)
            #expect(status == .badRequest && body["param"] == "callback_url")
            (status, body) = try await error("not json")
            #expect(status == .badRequest && body["message"] == "the body is not valid JSON")
            let wrongType = try await api.request(
                .post, "/v1/jobs", key: api.acme, json: simpleJob, headers: [.contentType: "text/plain"])
            #expect(wrongType.status == .unsupportedMediaType)
            let huge = #"{"lane": "demo", "request": {"x": ""# + String(repeating: "a", count: 1 << 21) + #""}}"#
            let tooLarge = try await api.request(.post, "/v1/jobs", key: api.acme, json: huge)
            #expect(tooLarge.status == .contentTooLarge)
            #expect((tooLarge.body["error"] as? [String: String])?["type"] == "request_too_large")
            #expect(try await api.queue.counts(lane: "demo").ready == 0)  // nothing was accepted
        }
    }

    @Test func idempotencyKeyReturnsTheSameJob() async throws {
        try await withAPI { api in
            let headers: HTTPFields = [HTTPField.Name("Idempotency-Key")!: "order-42"]
            let first = try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob, headers: headers)
            let again = try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob, headers: headers)
            #expect(first.status == .accepted && again.status == .accepted)
            #expect(first.body["id"] as? String == again.body["id"] as? String)
            #expect(again.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            #expect(first.headers[HTTPField.Name("Idempotent-Replayed")!] == nil)
            #expect(try await api.queue.counts(lane: "demo").ready == 1)
        }
    }

    @Test func longPollReturnsSoonAfterTheJobCompletes() async throws {
        try await withAPI { api in
            // Five times. It is ~1 ms on an idle machine. The waiter has no polling fallback: what
            // else could end a wait is its 30 s timeout, so each wake-up within 10 s is the
            // completion's notification (a loaded CI machine running many tests at once has taken
            // over a second; the speed itself is the benchmarks' to measure).
            var delays: [Duration] = []
            var id = ""
            for _ in 0..<5 {
                let submitted = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
                id = submitted
                async let polled = api.request(.get, "/v1/jobs/\(submitted)?wait=30", key: api.acme)
                try await Task.sleep(for: .milliseconds(100))
                let lease = try #require(try await api.queue.lease(lane: "demo", count: 1).first)
                let completedAt = ContinuousClock.now
                _ = try await api.queue.complete(lease.id, token: lease.token, result: Array(#"{"answer": 42}"#.utf8))
                let response = try await polled
                delays.append(ContinuousClock.now - completedAt)
                #expect(response.status == .ok)
                #expect(response.body["status"] as? String == "succeeded")
                #expect((response.body["result"] as? [String: Int])?["answer"] == 42)
            }
            delays.sort()
            #expect(delays[4] < .seconds(10), "woken by the completion, not the 30 s timeout: \(delays)")
            let badWait = try await api.request(.get, "/v1/jobs/\(id)?wait=600", key: api.acme)
            #expect(badWait.status == .badRequest)
        }
    }

    @Test func cancelCancelsOnceThenConflicts() async throws {
        try await withAPI { api in
            let id = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            let cancelled = try await api.request(.post, "/v1/jobs/\(id)/cancel", key: api.acme)
            #expect(cancelled.status == .ok)
            #expect(cancelled.body["status"] as? String == "cancelled")
            let again = try await api.request(.post, "/v1/jobs/\(id)/cancel", key: api.acme)
            #expect(again.status == .conflict)
            #expect((again.body["error"] as? [String: String])?["message"] == "the job already finished: cancelled")
            #expect(try await api.request(.post, "/v1/jobs/\(id)/cancel", key: api.acmeReader).status == .forbidden)
        }
    }
}

@Suite struct BulkSubmitTests {
    @Test func jsonArrayAndJSONLinesAreEnqueuedInOrder() async throws {
        try await withAPI { api in
            let array = try await api.request(
                .post, "/v1/jobs/bulk", key: api.acme,
                json: #"[{"lane": "bulk", "request": {"n": 1}}, {"lane": "bulk", "request": {"n": 2}, "idempotency_key": "k"}]"#)
            #expect(array.status == .accepted)
            #expect(array.body["count"] as? Int == 2)
            let lines = try await api.request(
                .post, "/v1/jobs/bulk", key: api.acme,
                json: "{\"lane\": \"bulk\", \"request\": {\"n\": 3}}\n\n{\"lane\": \"bulk\", \"request\": {\"n\": 4}, \"idempotency_key\": \"k\"}\n",
                headers: [.contentType: "application/jsonl"])
            #expect(lines.status == .accepted)
            let data = try #require(lines.body["data"] as? [[String: Any]])
            #expect(data.count == 2)
            #expect(data[1]["created"] as? Bool == false)  // the idempotency key of the first bulk
            #expect(try await api.queue.counts(lane: "bulk").ready == 3)
            let order = try await api.queue.lease(lane: "bulk", count: 10).map { String(decoding: $0.payload, as: UTF8.self) }
            // Each request exactly as sent, byte for byte.
            #expect(order == [#"{"n": 1}"#, #"{"n": 2}"#, #"{"n": 3}"#])
        }
    }

    @Test func oneBadLineRejectsTheWholeBulkAndNamesIt() async throws {
        try await withAPI { api in
            let body = """
                {"lane": "bulk", "request": {}}
                {"lane": "bulk", "request": {}, "priority": "high"}
                {"lane": "bulk", "request": {}}
                """
            let response = try await api.request(.post, "/v1/jobs/bulk", key: api.acme, json: body, headers: [.contentType: "application/jsonl"])
            #expect(response.status == .badRequest)
            let error = try #require(response.body["error"] as? [String: String])
            #expect(error["message"] == "line 2: 'priority' must be a whole number from -100 to 100")
            #expect(error["param"] == "line 2: priority")
            let notJSON = try await api.request(
                .post, "/v1/jobs/bulk", key: api.acme, json: "{\"lane\": \"bulk\", \"request\": {}}\n{oops",
                headers: [.contentType: "application/jsonl"])
            #expect((notJSON.body["error"] as? [String: String])?["message"] == "line 2: not valid JSON")
            #expect(try await api.queue.counts(lane: "bulk").ready == 0)  // nothing was accepted
        }
    }
}

@Suite struct BulkLimitTests {
    @Test func tooManyLinesIs413() async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-http-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/s.sqlite"))
            let secret = try keys.create(tenant: "acme", scopes: [.submit]).secret
            let queue = JobQueue(redis: redis)
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            var settings = SluiceAPI.Settings()
            settings.bulkMaxLines = 3
            let api = SluiceAPI.testing(queue: queue, waiter: waiter, keys: keys, settings: settings)
            let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in
                let body = String(repeating: "{\"lane\": \"bulk\", \"request\": {}}\n", count: 4)
                let response = try await client.execute(
                    uri: "/v1/jobs/bulk", method: .post,
                    headers: [.authorization: "Bearer \(secret)", .contentType: "application/jsonl"], body: ByteBuffer(string: body))
                #expect(response.status == .contentTooLarge)
                #expect(try await queue.counts(lane: "bulk").ready == 0)
            }
        }
    }
}

@Suite struct UnavailableTests {
    @Test func redisDownIs503WithRetryAfterAndReadyzSaysSo() async throws {
        try await withAPI { api in
            #expect(try await api.request(.get, "/readyz", key: nil).status == .ok)
            // Authenticate once while Redis is up (the key check itself needs only SQLite).
            #expect(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).status == .accepted)
            await api.server.stop()
            let submit = try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob)
            #expect(submit.status == .serviceUnavailable)
            #expect((submit.body["error"] as? [String: String])?["type"] == "unavailable")
            #expect(submit.headers[.retryAfter] == "1")
            let ready = try await api.request(.get, "/readyz", key: nil)
            #expect(ready.status == .serviceUnavailable)
            #expect(try await api.request(.get, "/healthz", key: nil).status == .ok)
            try await api.server.restart()
            #expect(await eventually(timeout: .seconds(30)) { (try? await api.request(.get, "/readyz", key: nil).status) == .ok })
        }
    }
}

@Suite struct QueuesRouteTests {
    @Test func queuesShowsEachLanesCountsAndOldestAgeToAdminsOnly() async throws {
        try await withAPI { api in
            for _ in 0..<3 { _ = try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob) }
            let delayed = try await api.request(
                .post, "/v1/jobs", key: api.globex, json: #"{"lane": "other", "request": {}, "not_before": 4102444800}"#)
            #expect(delayed.body["status"] as? String == "delayed")
            _ = try await api.queue.lease(lane: "demo", count: 1)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await api.request(.get, "/v1/queues", key: api.acme).status == .forbidden)
            let response = try await api.request(.get, "/v1/queues", key: api.admin)
            #expect(response.status == .ok)
            let lanes = try #require(response.body["data"] as? [[String: Any]])
            let demo = try #require(lanes.first { $0["lane"] as? String == "demo" })
            #expect(demo["ready"] as? Int == 2 && demo["leased"] as? Int == 1 && demo["delayed"] as? Int == 0)
            let age = try #require(demo["oldest_ready_age_seconds"] as? Double)
            #expect(age >= 0.25 && age < 60)
            let other = try #require(lanes.first { $0["lane"] as? String == "other" })
            #expect(other["delayed"] as? Int == 1 && other["oldest_ready_age_seconds"] == nil)
        }
    }
}
