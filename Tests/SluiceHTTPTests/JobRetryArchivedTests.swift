import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceHTTP
import SluiceQueue
import SluiceRedis
import SluiceStore
import SluiceTestSupport
import Testing

/// Retrying a dead job that has left Redis (archived past its result TTL): read from its
/// archived record; real Redis, a real SQLite archive, real HTTP.
@Suite struct JobRetryArchivedTests {
    @Test func archivedDeadJobIsRetriedFromItsRecord() async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-retry-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/sluice.sqlite"))
            let acme = try keys.create(tenant: "acme", scopes: [.submit, .read]).secret
            let globex = try keys.create(tenant: "globex", scopes: [.submit, .read]).secret
            let queue = JobQueue(redis: redis)
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }

            // A dead job, archived as the archiver does (its hash as a blob), then gone from Redis.
            let spec = JobSpec(lane: "demo", tenant: "acme", priority: 2, payload: Array(#"{"n": 7}"#.utf8), maxAttempts: 1)
            let old = try await queue.enqueue(spec).id
            let leased = try #require(try await queue.lease(lane: "demo", count: 1, duration: .seconds(30)).first)
            _ = try await queue.fail(leased.id, token: leased.token, attempt: leased.attempt, error: "upstream 500", retryable: true)
            let record = try #require(try await queue.records([old]).first ?? nil)
            #expect(try record.job().state == .dead)
            _ = try await ArchiveStore(database: keys.database).archive([
                ArchivedJob(
                    id: old.rawValue, tenant: "acme", keyID: nil, lane: "demo", state: "dead", createdAt: .current(), finishedAt: .current(),
                    batch: nil, customID: nil, model: "demo", inputTokens: nil, outputTokens: nil, cost: 0, record: record.encoded)
            ])
            _ = try await redis.send("DEL", KeyLayout.job(old))
            #expect(try await queue.get(old) == nil)

            let api = SluiceAPI.testing(queue: queue, waiter: waiter, keys: keys)
            let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in
                func post(_ uri: String, _ key: String) async throws -> (HTTPResponse.Status, [String: Any]) {
                    let response = try await client.execute(uri: uri, method: .post, headers: [.authorization: "Bearer \(key)"], body: nil)
                    return (response.status, (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:])
                }
                #expect(try await post("/v1/jobs/\(old.rawValue)/retry", globex).0 == .notFound)
                let (status, body) = try await post("/v1/jobs/\(old.rawValue)/retry", acme)
                #expect(status == .accepted)
                let new = try #require((body["id"] as? String).flatMap(JobID.init))
                let job = try #require(try await queue.get(new))
                #expect(job.state == .queued && job.priority == 2 && job.maxAttempts == 1 && job.tenant == "acme")
                #expect(job.payload == Array(#"{"n": 7}"#.utf8))
                #expect(job.retryOf == old)
                // A second retry answers the same new job (the idempotency key), archived or not.
                #expect(try await post("/v1/jobs/\(old.rawValue)/retry", acme).1["id"] as? String == new.rawValue)
                // The archived record is left as it was: it does not get retried_as (docs/api.md, "Retrying dead jobs", says so).
                let read = try await client.execute(uri: "/v1/jobs/\(old.rawValue)", method: .get, headers: [.authorization: "Bearer \(acme)"], body: nil)
                let document = try #require(try JSONSerialization.jsonObject(with: Data(buffer: read.body)) as? [String: Any])
                #expect(document["status"] as? String == "dead")
                #expect(document["retried_as"] == nil)
            }
        }
    }
}
