import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceHTTP
import SluiceQueue
import SluiceStore
import SluiceTestSupport
import Testing

/// Budgets at submit over real HTTP and a real redis-server: a key with $0.01 a day.
@Suite struct BudgetRoutesTests {
    /// Each job is estimated at 12 output tokens × $80 per million = 960 micro-dollars: ten fit
    /// in 10,000. An idempotent replay reserves nothing more; a bulk request that does not fit is
    /// refused whole; the eleventh job is 429 budget_exceeded naming the key's budget.
    @Test func aKeysDailyBudgetAdmitsTenJobsThen429() async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-http-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/sluice.sqlite"))
            let queue = JobQueue(redis: redis)
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            let (secret, key) = try keys.create(tenant: "acme", scopes: [.submit, .read])
            let other = try keys.create(tenant: "globex", scopes: [.submit, .read]).secret
            let admin = try keys.create(tenant: "ops", scopes: [.admin]).secret
            var settings = SluiceAPI.Settings()
            settings.providers = ["demo": SluiceConfiguration.Provider(name: "demo", kind: "openai", baseURL: "http://127.0.0.1:9/v1")]
            settings.prices = ["m": SluiceConfiguration.Price(input: 0, output: 80)]
            settings.budgets.keys = [key.prefix: BudgetPolicy(micros: 10_000, per: .day)]
            let router = SluiceAPI.testing(queue: queue, waiter: waiter, keys: keys, settings: settings).router()
            let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in
                func post(_ path: String, _ body: String, key: String = secret, idempotency: String? = nil) async throws -> (HTTPResponse.Status, [String: Any], HTTPFields) {
                    var headers: HTTPFields = [.authorization: "Bearer \(key)", .contentType: "application/json"]
                    if let idempotency { headers[HTTPField.Name("Idempotency-Key")!] = idempotency }
                    let response = try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body))
                    return (response.status, (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:], response.headers)
                }
                func budgets(_ key: String) async throws -> [[String: Any]] {
                    let response = try await client.execute(uri: "/v1/budgets", method: .get, headers: [.authorization: "Bearer \(key)"])
                    #expect(response.status == .ok)
                    return ((try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any])?["data"] as? [[String: Any]] ?? []
                }
                let job = #"{"lane": "demo/m", "request": {"model": "m", "max_tokens": 12, "messages": [{"role": "user", "content": "hi"}]}}"#
                #expect(try await post("/v1/jobs", job, idempotency: "once").0 == .accepted)
                #expect(try await post("/v1/jobs", job, idempotency: "once").0 == .accepted)  // a replay: given back
                let eight = "[" + Array(repeating: job, count: 8).joined(separator: ",") + "]"
                #expect(try await post("/v1/jobs/bulk", eight).0 == .accepted)
                let two = "[" + Array(repeating: job, count: 2).joined(separator: ",") + "]"
                let bulk = try await post("/v1/jobs/bulk", two)
                #expect(bulk.0 == .tooManyRequests)  // 9 + 2 > 10: none of the two
                #expect(try await post("/v1/jobs", job).0 == .accepted)  // the tenth
                let (status, body, headers) = try await post("/v1/jobs", job)
                #expect(status == .tooManyRequests)
                let error = body["error"] as? [String: Any] ?? [:]
                #expect(error["type"] as? String == "budget_exceeded")
                #expect((error["message"] as? String ?? "").contains("key:\(key.prefix)"), "\(error)")
                let retryAfter = headers[.retryAfter].flatMap { Int($0) }
                #expect(retryAfter.map { (1...86_400).contains($0) } == true)
                // Another tenant's key has no budget: it submits freely, and sees none.
                #expect(try await post("/v1/jobs", job, key: other).0 == .accepted)
                #expect(try await budgets(other).isEmpty)
                // The key sees its budget: ten estimates reserved, nothing spent yet.
                let mine = try await budgets(secret)
                #expect(mine.count == 1)
                #expect(mine.first?["name"] as? String == "key:\(key.prefix)")
                #expect(abs((mine.first?["reserved_usd"] as? Double ?? 0) - 0.0096) < 1e-9, "\(mine)")
                #expect(mine.first?["spent_usd"] as? Double == 0)
                #expect(try await budgets(admin).map { $0["name"] as? String } == ["key:\(key.prefix)"])
                #expect(try await queue.openJobs(key: key.id) == 10)
            }
        }
    }
}
