import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SluiceBatch
import SluiceCore
import SluiceHTTP
import SluiceQueue
import SluiceStore
import SluiceTestSupport
import SluiceWebhooks
import Testing

/// A key's budget set through `/v1/keys`, and client batches reserving their budgets, over real
/// HTTP and a real redis-server. Each job is estimated at 12 output tokens × $80 per million =
/// 960 micro-dollars.
@Suite struct BudgetKeysBatchesTests {
    static let job = #"{"lane": "demo/m", "request": {"model": "m", "max_tokens": 12, "messages": [{"role": "user", "content": "hi"}]}}"#

    /// The API with a batch service, a provider `demo` serving model `m` at $80 per million
    /// output tokens, and `budgets`; `body` gets a client, an admin key and the queue.
    static func withAPI(
        budgets: Budgets = Budgets(), _ body: @escaping @Sendable (TestClientProtocol, APIKeyStore, String, JobQueue) async throws -> Void
    ) async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-http-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let database = try SluiceDatabase(path: directory + "/sluice.sqlite")
            let keys = APIKeyStore(database: database)
            let queue = JobQueue(redis: redis)
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            let admin = try keys.create(tenant: "ops", scopes: [.admin]).secret
            var settings = SluiceAPI.Settings()
            var provider = SluiceConfiguration.Provider(name: "demo", kind: "openai", baseURL: "http://127.0.0.1:9/v1")
            provider.models = ["m"]
            settings.providers = ["demo": provider]
            settings.prices = ["m": SluiceConfiguration.Price(input: 0, output: 80)]
            settings.budgets = budgets
            let webhooks = WebhookStore(redis: redis, retention: queue.configuration.resultTTL)
            let batches = BatchService(
                queue: queue, database: database, webhooks: webhooks, directory: ModelDirectory(providers: settings.providers, routes: [:]),
                logger: Logger(label: "test"))
            let api = SluiceAPI(
                services: .init(
                    queue: queue, waiter: waiter, keys: keys, archive: ArchiveStore(database: database), webhooks: webhooks, batches: batches),
                settings: settings)
            let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in try await body(client, keys, admin, queue) }
        }
    }

    static func call(
        _ client: TestClientProtocol, _ method: HTTPRequest.Method, _ path: String, key: String, body: String? = nil,
        contentType: String = "application/json"
    ) async throws -> (status: HTTPResponse.Status, json: [String: Any]) {
        var headers: HTTPFields = [.authorization: "Bearer \(key)"]
        if body != nil { headers[.contentType] = contentType }
        let response = try await client.execute(uri: path, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
        return (response.status, (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:])
    }

    static func errorOf(_ json: [String: Any]) -> [String: Any] { json["error"] as? [String: Any] ?? [:] }

    @Test func aKeysBudgetSetThroughKeysIsShownAndEnforced() async throws {
        try await Self.withAPI { client, keys, admin, queue in
            // Checked as the configuration's: 400 naming the member.
            let bad = try await Self.call(
                client, .post, "/v1/keys", key: admin, body: #"{"tenant": "acme", "scopes": ["submit"], "budget": {"usd": 5, "per": "week"}}"#)
            #expect(bad.status == .badRequest)
            #expect(Self.errorOf(bad.json)["param"] as? String == "budget.per", "\(bad.json)")
            let negative = try await Self.call(
                client, .post, "/v1/keys", key: admin, body: #"{"tenant": "acme", "scopes": ["submit"], "budget": {"usd": -1}}"#)
            #expect(Self.errorOf(negative.json)["param"] as? String == "budget.usd", "\(negative.json)")

            let created = try await Self.call(
                client, .post, "/v1/keys", key: admin,
                body: #"{"tenant": "acme", "scopes": ["submit", "read"], "budget": {"usd": 0.002, "per": "day", "on_exceeded": "fail"}}"#)
            #expect(created.status == .created, "\(created.json)")
            let secret = try #require(created.json["key"] as? String)
            let prefix = try #require(created.json["prefix"] as? String)
            let shown = try await Self.call(client, .get, "/v1/keys/\(prefix)", key: admin).json["budget"] as? [String: Any]
            #expect(shown?["usd"] as? Double == 0.002 && shown?["per"] as? String == "day" && shown?["on_exceeded"] as? String == "fail", "\(shown ?? [:])")

            // Two jobs fit in $0.002 (2 × $0.00096); the third is refused, naming the key's budget.
            let first = try await Self.call(client, .post, "/v1/jobs", key: secret, body: Self.job)
            #expect(first.status == .accepted)
            #expect(try await Self.call(client, .post, "/v1/jobs", key: secret, body: Self.job).status == .accepted)
            let third = try await Self.call(client, .post, "/v1/jobs", key: secret, body: Self.job)
            #expect(third.status == .tooManyRequests)
            #expect(Self.errorOf(third.json)["type"] as? String == "budget_exceeded")
            #expect((Self.errorOf(third.json)["message"] as? String ?? "").contains("budget key:\(prefix) of $0.002000 per day"), "\(third.json)")
            // The job carries the key's budget to the worker, for the check at lease.
            let id = try #require((first.json["id"] as? String).flatMap(JobID.init))
            let envelope = JobEnvelope(decoding: try #require(try await queue.get(id)).metadata)
            #expect(envelope.budget == "day 2000 fail \(prefix)")
            // And what it reserved, and when: the settlement gives back exactly that.
            #expect(envelope.reserved.flatMap(Budgets.reserved)?.estimate == 960, "\(envelope)")

            // GET /v1/budgets: the key sees its own budget; so does an admin.
            let mine = try await Self.call(client, .get, "/v1/budgets", key: secret).json["data"] as? [[String: Any]] ?? []
            #expect(mine.map { $0["name"] as? String } == ["key:\(prefix)"])
            #expect(abs((mine.first?["reserved_usd"] as? Double ?? 0) - 0.00192) < 1e-9, "\(mine)")
            let all = try await Self.call(client, .get, "/v1/budgets", key: admin).json["data"] as? [[String: Any]] ?? []
            #expect(all.contains { $0["name"] as? String == "key:\(prefix)" && $0["limit_usd"] as? Double == 0.002 }, "\(all)")

            // The key itself (no admin scope) can neither raise its budget nor turn its cache on.
            for body in [#"{"budget": {"usd": 1000, "per": "day"}}"#, #"{"budget": null}"#, #"{"cache": true}"#] {
                let own = try await Self.call(client, .patch, "/v1/keys/\(prefix)", key: secret, body: body)
                #expect(own.status == .forbidden, "\(own.json)")
            }
            #expect(try keys.find(prefix: prefix)?.budget?.micros == 2_000)

            // Raised through PATCH: in force at once; removed (null): no budget at all.
            let raised = try await Self.call(client, .patch, "/v1/keys/\(prefix)", key: admin, body: #"{"budget": {"usd": 0.003, "per": "day"}}"#)
            #expect((raised.json["budget"] as? [String: Any])?["on_exceeded"] as? String == "wait", "\(raised.json)")
            #expect(try await Self.call(client, .post, "/v1/jobs", key: secret, body: Self.job).status == .accepted)
            #expect(try await Self.call(client, .post, "/v1/jobs", key: secret, body: Self.job).status == .tooManyRequests)
            let removed = try await Self.call(client, .patch, "/v1/keys/\(prefix)", key: admin, body: #"{"budget": null}"#)
            #expect(removed.json.keys.contains("budget") && removed.json["budget"] is NSNull, "\(removed.json)")
            #expect(try await Self.call(client, .post, "/v1/jobs", key: secret, body: Self.job).status == .accepted)
            #expect(try keys.find(prefix: prefix)?.budget == nil)
        }
    }

    /// A multipart upload of a batch input file (`purpose=batch`).
    static func upload(_ client: TestClientProtocol, key: String, lines: [String]) async throws -> String {
        let boundary = "sluice-budget-test"
        let body =
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
            + "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n"
            + lines.joined(separator: "\n") + "\r\n--\(boundary)--\r\n"
        let uploaded = try await call(client, .post, "/v1/files", key: key, body: body, contentType: "multipart/form-data; boundary=\(boundary)")
        #expect(uploaded.status == .ok, "\(uploaded.json)")
        return try #require(uploaded.json["id"] as? String)
    }

    static func line(_ n: Int) -> String {
        #"{"custom_id": "r\#(n)", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "max_tokens": 12, "messages": [{"role": "user", "content": "hi"}]}}"#
    }

    /// A tenant with $0.01 a day: a batch of eleven such requests ($0.01056) is refused whole
    /// with 429 budget_exceeded, through either batch API; one of ten is created and reserves
    /// $0.0096, so a single job more no longer fits.
    @Test func aClientBatchWhoseEstimateDoesNotFitIs429() async throws {
        var budgets = Budgets()
        budgets.tenants["acme"] = BudgetPolicy(micros: 10_000, per: .day)
        try await Self.withAPI(budgets: budgets) { client, keys, _, queue in
            let (secret, key) = try keys.create(tenant: "acme", scopes: [.submit, .read])
            let eleven = try await Self.upload(client, key: secret, lines: (0..<11).map(Self.line))
            let refused = try await Self.call(
                client, .post, "/v1/batches", key: secret,
                body: #"{"input_file_id": "\#(eleven)", "endpoint": "/v1/chat/completions", "completion_window": "24h"}"#)
            #expect(refused.status == .tooManyRequests, "\(refused.json)")
            #expect(Self.errorOf(refused.json)["type"] as? String == "budget_exceeded", "\(refused.json)")
            #expect((Self.errorOf(refused.json)["message"] as? String ?? "").contains("tenant:acme"), "\(refused.json)")
            let request = #"{"custom_id": "r%d", "params": {"model": "m", "max_tokens": 12, "messages": [{"role": "user", "content": "hi"}]}}"#
            let anthropic = #"{"requests": ["# + (0..<11).map { String(format: request, $0) }.joined(separator: ",") + "]}"
            let refusedToo = try await Self.call(client, .post, "/v1/messages/batches", key: secret, body: anthropic)
            #expect(refusedToo.status == .tooManyRequests, "\(refusedToo.json)")
            #expect(Self.errorOf(refusedToo.json)["type"] as? String == "budget_exceeded", "\(refusedToo.json)")
            #expect(try await queue.openJobs(key: key.id) == 0)

            let ten = try await Self.upload(client, key: secret, lines: (0..<10).map(Self.line))
            let created = try await Self.call(
                client, .post, "/v1/batches", key: secret,
                body: #"{"input_file_id": "\#(ten)", "endpoint": "/v1/chat/completions", "completion_window": "24h"}"#)
            #expect(created.status == .ok, "\(created.json)")
            #expect(try await queue.openJobs(key: key.id) == 10)
            // Each of the batch's jobs carries what it reserved (12 × $80 per million: 960 micro-dollars).
            let jobs = try await queue.list(tenant: "acme", limit: 20).jobs
            #expect(jobs.count == 10 && jobs.allSatisfy { JobEnvelope(decoding: $0.metadata).reserved.flatMap(Budgets.reserved)?.estimate == 960 })
            let budget = (try await Self.call(client, .get, "/v1/budgets", key: secret).json["data"] as? [[String: Any]])?.first ?? [:]
            #expect(abs((budget["reserved_usd"] as? Double ?? 0) - 0.0096) < 1e-9, "\(budget)")
            #expect(try await Self.call(client, .post, "/v1/jobs", key: secret, body: Self.job).status == .tooManyRequests)
        }
    }
}
