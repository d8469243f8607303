import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceQueue
import SluiceWorker
import Testing

@Suite struct KeyRoutesTests {
    @Test func adminCreatesListsLimitsAndRevokesKeys() async throws {
        try await withAPI { api in
            #expect(try await api.request(.get, "/v1/keys", key: api.acme).status == .forbidden)
            #expect(try await api.request(.post, "/v1/keys", key: api.acme, json: #"{"tenant": "x", "scopes": ["read"]}"#).status == .forbidden)

            let created = try await api.request(
                .post, "/v1/keys", key: api.admin,
                json: #"{"tenant": "initech", "scopes": ["submit", "read"], "limits": {"max_queued": 2}}"#)
            #expect(created.status == .created)
            let secret = try #require(created.body["key"] as? String)
            let prefix = try #require(created.body["prefix"] as? String)
            #expect(secret.hasPrefix(prefix + "_"))
            #expect((created.body["limits"] as? [String: Any])?["max_queued"] as? Int == 2)

            // The new key works, and its cap holds: 2 open jobs, the third is 429.
            for _ in 0..<2 { #expect(try await api.request(.post, "/v1/jobs", key: secret, json: simpleJob).status == .accepted) }
            let over = try await api.request(.post, "/v1/jobs", key: secret, json: simpleJob)
            #expect(over.status == .tooManyRequests)
            #expect((over.body["error"] as? [String: String])?["type"] == "queue_cap")
            #expect(over.headers[.retryAfter] == "1")

            let read = try await api.request(.get, "/v1/keys/\(prefix)", key: api.admin)
            #expect(read.body["open_jobs"] as? Int == 2)
            #expect(read.body["key"] == nil, "the secret is shown once only")
            #expect(read.body["last_used_at"] as? Int != nil)
            let listed = try await api.request(.get, "/v1/keys?tenant=initech", key: api.admin)
            #expect((listed.body["data"] as? [[String: Any]])?.compactMap { $0["prefix"] as? String } == [prefix])

            // Lifting the cap takes effect at once.
            let patched = try await api.request(.patch, "/v1/keys/\(prefix)", key: api.admin, json: #"{"limits": {"max_queued": null}}"#)
            #expect(patched.status == .ok)
            #expect((patched.body["limits"] as? [String: Any])?["max_queued"] is NSNull)
            #expect(try await api.request(.post, "/v1/jobs", key: secret, json: simpleJob).status == .accepted)

            // Revocation, also at once.
            let revoked = try await api.request(.delete, "/v1/keys/\(prefix)", key: api.admin)
            #expect(revoked.body["status"] as? String == "revoked")
            #expect(try await api.request(.post, "/v1/jobs", key: secret, json: simpleJob).status == .unauthorized)
            #expect(try await api.request(.delete, "/v1/keys/sluice_nothere", key: api.admin).status == .notFound)
        }
    }

    @Test func submitRateIs429WithRetryAfterAndABulkOverTheBurstIs422() async throws {
        try await withAPI { api in
            let created = try await api.request(
                .post, "/v1/keys", key: api.admin,
                json: #"{"tenant": "acme", "scopes": ["submit"], "limits": {"submit_rate": 0.1, "submit_burst": 3}}"#)
            let secret = try #require(created.body["key"] as? String)
            let bulk = "[" + Array(repeating: simpleJob, count: 3).joined(separator: ",") + "]"
            #expect(try await api.request(.post, "/v1/jobs/bulk", key: secret, json: bulk).status == .accepted)
            let limited = try await api.request(.post, "/v1/jobs", key: secret, json: simpleJob)
            #expect(limited.status == .tooManyRequests)
            #expect((limited.body["error"] as? [String: String])?["type"] == "rate_limited")
            let retryAfter = try #require(limited.headers[.retryAfter].flatMap { Int($0) })
            #expect(retryAfter >= 1 && retryAfter <= 10)
            let tooBig = "[" + Array(repeating: simpleJob, count: 4).joined(separator: ",") + "]"
            let refused = try await api.request(.post, "/v1/jobs/bulk", key: secret, json: tooBig)
            #expect(refused.status == .unprocessableContent)
            #expect(try await api.queue.counts(lane: "demo").ready == 3, "nothing of the refused requests was enqueued")
        }
    }

    @Test func badKeyRequestsNameTheField() async throws {
        try await withAPI { api in
            for (body, param) in [
                (#"{"tenant": "x", "scopes": ["write"]}"#, "scopes"),
                (#"{"tenant": 5, "scopes": ["read"]}"#, "tenant"),
                (#"{"tenant": "x", "scopes": ["read"], "limits": {"submit_rate": -1}}"#, "limits.submit_rate"),
                (#"{"tenant": "x", "scopes": ["read"], "limits": {"submit_burst": 5}}"#, "limits.submit_burst"),
                (#"{"tenant": "x", "scopes": ["read"], "limits": {"max_queud": 5}}"#, "limits.max_queud"),
                (#"{"tenant": "x", "scopes": ["read"], "role": "boss"}"#, "role"),
            ] {
                let response = try await api.request(.post, "/v1/keys", key: api.admin, json: body)
                #expect(response.status == .badRequest, "\(body)")
                #expect((response.body["error"] as? [String: String])?["param"] == param, "\(body)")
            }
        }
    }
}

@Suite struct ProvidersRouteTests {
    @Test func providersShowLimitsPauseInFlightAndLanes() async throws {
        try await withAPI { api in
            _ = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"lane": "mock/gpt-4o-mini", "request": {}}"#)
            _ = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"lane": "other", "request": {}}"#)
            let limiter = ProviderLimiter(redis: api.queue.redis, provider: "mock", limits: .init(concurrency: 4))
            try await limiter.pause(for: .seconds(30))
            _ = try await limiter.acquire(want: 1, tokens: 1)  // refused while paused: nothing taken
            // What workers report: a lane's breaker, and the limits the provider last announced.
            let health = LaneHealth(redis: api.queue.redis)
            let until = UnixMillis(UnixMillis.current().value + 30_000)
            try await health.report(lane: "mock/gpt-4o-mini", breaker: "open", until: until, reason: "mock HTTP 500 in 3 ms")
            try await health.report(
                provider: "mock",
                announced: .init(requestsRemaining: 12, requestsLimit: 60, tokensRemaining: nil, tokensLimit: nil, at: .current()))
            #expect(try await api.request(.get, "/v1/providers", key: api.acme).status == .forbidden)
            let response = try await api.request(.get, "/v1/providers", key: api.admin)
            #expect(response.status == .ok)
            let mock = try #require((response.body["data"] as? [[String: Any]])?.first { $0["provider"] as? String == "mock" })
            #expect(mock["provider"] as? String == "mock")
            #expect((mock["limits"] as? [String: Any])?["rpm"] as? Int == 60)
            let paused = try #require(mock["paused_until"] as? Double)
            #expect(paused > Date().timeIntervalSince1970 + 20)
            #expect(mock["in_flight"] as? Int == 0)
            let lanes = try #require(mock["lanes"] as? [[String: Any]])
            #expect(lanes.count == 1 && lanes[0]["lane"] as? String == "mock/gpt-4o-mini" && lanes[0]["ready"] as? Int == 1)
            let breaker = try #require(lanes[0]["breaker"] as? [String: Any])
            #expect(breaker["state"] as? String == "open" && breaker["reason"] as? String == "mock HTTP 500 in 3 ms")
            #expect(breaker["until"] as? Double == Double(until.value) / 1000)
            let announced = try #require(mock["announced"] as? [String: Any])
            #expect(announced["requests_remaining"] as? Int == 12 && announced["requests_limit"] as? Int == 60)
            #expect(announced["tokens_remaining"] is NSNull)
            // Closed again: the entry goes, and the lane says closed.
            try await health.report(lane: "mock/gpt-4o-mini", breaker: nil)
            let after = try await api.request(.get, "/v1/providers", key: api.admin)
            let lane = try #require(((after.body["data"] as? [[String: Any]])?.first { $0["provider"] as? String == "mock" }?["lanes"] as? [[String: Any]])?.first)
            #expect((lane["breaker"] as? [String: Any])?["state"] as? String == "closed")
        }
    }
}

@Suite struct ModelRouteTests {
    @Test func aModelNamingARouteIsSplitByWeightAndRecorded() async throws {
        try await withAPI { api in
            let lines = Array(repeating: #"{"model": "split", "request": {"messages": []}}"#, count: 1_000).joined(separator: "\n")
            let bulk = try await api.request(.post, "/v1/jobs/bulk", key: api.acme, json: lines, headers: [.contentType: "application/jsonl"])
            #expect(bulk.status == .accepted)
            let a = try await api.queue.counts(lane: "mock/a").ready
            let b = try await api.queue.counts(lane: "mock/b").ready
            #expect(a + b == 1_000)
            #expect(b > 50 && b < 160, "10% of 1,000 went to b: \(b)")  // binomial: 100 ± 3 sd is 70-130
            let one = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"model": "split", "request": {}}"#)
            let id = try #require(one.body["id"] as? String)
            let read = try await api.request(.get, "/v1/jobs/\(id)", key: api.acme)
            #expect(read.body["route"] as? String == "split")
            #expect(["mock/a", "mock/b"].contains(read.body["lane"] as? String ?? ""))
            let unknown = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"model": "nope", "request": {}}"#)
            #expect(unknown.status == .badRequest)
            #expect((unknown.body["error"] as? [String: String])?["param"] == "model")
        }
    }
}
