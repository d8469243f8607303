import Foundation
import HTTPTypes
import SluiceCore
import SluiceQueue
import Testing

/// `POST /v1/jobs/{id}/retry` over real Redis and real HTTP: a dead (or failed) job is submitted
/// again as a new job linked to it; anything else is 409.
@Suite struct JobRetryTests {
    /// Submits a job with one attempt as `key` and makes it dead (a retryable failure with no
    /// attempt left) or failed (a fatal one) through the queue, as a worker would.
    /// (globex may not use a priority above 0.)
    private func finishedBadly(_ api: Fixture, key: String, retryable: Bool, priority: Int = 3) async throws -> String {
        let job = #"{"lane": "demo", "max_attempts": 1, "priority": \#(priority), "metadata": {"ticket": "t-7"}, "request": {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}}"#
        let id = try #require(try await api.request(.post, "/v1/jobs", key: key, json: job).body["id"] as? String)
        let leased = try #require(try await api.queue.lease(lane: "demo", count: 1, duration: .seconds(30)).first)
        #expect(leased.id.rawValue == id)
        _ = try await api.queue.fail(leased.id, token: leased.token, attempt: leased.attempt, error: "upstream 500", retryable: retryable)
        let state = try await api.request(.get, "/v1/jobs/\(id)", key: key).body["status"] as? String
        #expect(state == (retryable ? "dead" : "failed"))
        return id
    }

    @Test func deadJobIsRetriedAsANewLinkedJobOnceAndItCanSucceed() async throws {
        try await withAPI { api in
            let old = try await finishedBadly(api, key: api.acme, retryable: true)
            let retried = try await api.request(.post, "/v1/jobs/\(old)/retry", key: api.acme)
            #expect(retried.status == .accepted)
            #expect(retried.headers[HTTPField.Name("Idempotent-Replayed")!] == nil)
            let new = try #require(retried.body["id"] as? String)
            #expect(new != old)
            #expect(retried.body["status"] as? String == "queued")

            // The new job carries the old one's lane, request, priority, metadata and attempts.
            let read = try await api.request(.get, "/v1/jobs/\(new)", key: api.acme)
            #expect(read.body["lane"] as? String == "demo")
            #expect(read.body["priority"] as? Int == 3)
            #expect(read.body["max_attempts"] as? Int == 1)
            #expect((read.body["metadata"] as? [String: String])?["ticket"] == "t-7")
            #expect((read.body["request"] as? [String: Any])?["model"] as? String == "demo")
            let events = try await api.request(.get, "/v1/jobs/\(new)/events", key: api.acme)
            let first = try #require((events.body["data"] as? [[String: Any]])?.first)
            #expect(first["info"] as? String == "retry of \(old)")
            #expect(read.body["retry_of"] as? String == old)
            // The old job is left as it was, but for the link to its retry.
            let oldRead = try await api.request(.get, "/v1/jobs/\(old)", key: api.acme)
            #expect(oldRead.body["status"] as? String == "dead")
            #expect(oldRead.body["retried_as"] as? String == new)

            // A second retry answers the same new job.
            let again = try await api.request(.post, "/v1/jobs/\(old)/retry", key: api.acme)
            #expect(again.status == .accepted)
            #expect(again.body["id"] as? String == new)
            #expect(again.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            // Also once the idempotency key has expired (24 h by default): the old job names its retry.
            let idempotency = KeyLayout.idempotency(lane: "demo", tenant: "acme", key: "retry:\(old)")
            #expect(try await api.queue.redis.send("DEL", idempotency) == .integer(1))
            let late = try await api.request(.post, "/v1/jobs/\(old)/retry", key: api.acme)
            #expect(late.status == .accepted)
            #expect(late.body["id"] as? String == new)

            // The new job runs with a fresh attempt and succeeds; a succeeded job is not retried.
            let leased = try #require(try await api.queue.lease(lane: "demo", count: 1, duration: .seconds(30)).first)
            #expect(leased.id.rawValue == new)
            _ = try await api.queue.complete(leased.id, token: leased.token, result: Array(#"{"ok": true}"#.utf8))
            let done = try await api.request(.get, "/v1/jobs/\(new)?wait=30", key: api.acme)
            #expect(done.body["status"] as? String == "succeeded")
            let refused = try await api.request(.post, "/v1/jobs/\(new)/retry", key: api.acme)
            #expect(refused.status == .conflict)
            #expect((refused.body["error"] as? [String: String])?["type"] == "conflict")
        }
    }

    @Test func failedJobIsRetriedButQueuedOtherTenantsAndReadersAreNot() async throws {
        try await withAPI { api in
            let failed = try await finishedBadly(api, key: api.acme, retryable: false)
            #expect(try await api.request(.post, "/v1/jobs/\(failed)/retry", key: api.globex).status == .notFound)
            #expect(try await api.request(.post, "/v1/jobs/\(failed)/retry", key: api.acmeReader).status == .forbidden)
            #expect(try await api.request(.post, "/v1/jobs/job_nonsense/retry", key: api.acme).status == .notFound)
            let retried = try await api.request(.post, "/v1/jobs/\(failed)/retry", key: api.acme)
            #expect(retried.status == .accepted)
            // The new job is queued: not retried.
            let new = try #require(retried.body["id"] as? String)
            let queued = try await api.request(.post, "/v1/jobs/\(new)/retry", key: api.acme)
            #expect(queued.status == .conflict)
            #expect((queued.body["error"] as? [String: String])?["message"]?.hasSuffix("queued") == true)
        }
    }

    @Test func filteredRetryRetriesTheTenantsDeadJobsOnceAndChecksItsFilter() async throws {
        try await withAPI { api in
            var dead: [String] = []
            for _ in 0..<3 { dead.append(try await finishedBadly(api, key: api.acme, retryable: true)) }
            let failed = try await finishedBadly(api, key: api.acme, retryable: false)
            let others = try await finishedBadly(api, key: api.globex, retryable: true, priority: 0)

            let retried = try await api.request(.post, "/v1/jobs/retry", key: api.acme, json: #"{"lane": "demo", "state": "dead", "limit": 1000}"#)
            #expect(retried.status == .accepted)
            #expect(retried.body["count"] as? Int == 3)
            let data = try #require(retried.body["data"] as? [[String: Any]])
            #expect(Set(data.compactMap { $0["retry_of"] as? String }) == Set(dead))
            #expect(data.allSatisfy { $0["created"] as? Bool == true })
            for entry in data {
                let new = try #require(entry["id"] as? String)
                let read = try await api.request(.get, "/v1/jobs/\(new)", key: api.acme)
                #expect(read.body["status"] as? String == "queued")
                #expect(read.body["retry_of"] as? String == entry["retry_of"] as? String)
            }
            // Neither the failed job nor the other tenant's dead one was touched.
            #expect(try await api.request(.get, "/v1/jobs/\(failed)", key: api.acme).body["retried_as"] == nil)
            #expect(try await api.request(.get, "/v1/jobs/\(others)", key: api.globex).body["retried_as"] == nil)

            // A second call finds nothing left to retry; a 'before' in the past selects nothing.
            let again = try await api.request(.post, "/v1/jobs/retry", key: api.acme, json: #"{"state": "dead"}"#)
            #expect(again.status == .accepted)
            #expect(again.body["count"] as? Int == 0)
            let old = try await api.request(.post, "/v1/jobs/retry", key: api.acme, json: #"{"state": "failed", "before": 1000}"#)
            #expect(old.body["count"] as? Int == 0)
            let failedRetry = try await api.request(.post, "/v1/jobs/retry", key: api.acme, json: #"{"state": "failed", "limit": 1}"#)
            #expect(failedRetry.body["count"] as? Int == 1)

            // Bad filters are 400 naming the field; a reader may not retry.
            for (body, param) in [(#"{"limit": 1001}"#, "limit"), (#"{"limit": 0}"#, "limit"), (#"{"state": "succeeded"}"#, "state"), (#"{"lane": "demo", "tenant": "x"}"#, "tenant"), (#"{"before": "yesterday"}"#, "before"), (#"{"before": -1}"#, "before"), (#"{"before": 1e300}"#, "before")] {
                let refused = try await api.request(.post, "/v1/jobs/retry", key: api.acme, json: body)
                #expect(refused.status == .badRequest)
                #expect((refused.body["error"] as? [String: String])?["param"] == param, "\(body)")
            }
            #expect(try await api.request(.post, "/v1/jobs/retry", key: api.acmeReader, json: "{}").status == .forbidden)
        }
    }
}
