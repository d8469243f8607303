import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceCore
import SluiceHTTP
import SluiceQueue
import SluiceTestSupport
import Testing

/// Hostile numbers, lanes and priorities from a tenant: each is a 4xx naming what is wrong, and
/// the server still answers afterwards. Every one of these once trapped the whole process.
@Suite struct BoundedInputTests {
    static let int64Min = "-9223372036854775808"
    static let int64Max = "9223372036854775807"

    @Test func extremeNumbersInASubmitAre400NamingTheField() async throws {
        try await withAPI { api in
            for field in ["priority", "not_before", "deadline", "max_attempts"] {
                for value in [Self.int64Min, Self.int64Max, "1e300", "-1e300", "99999999999999999999", "1.5"] {
                    let response = try await api.request(
                        .post, "/v1/jobs", key: api.acme, json: #"{"lane": "demo", "request": {}, "\#(field)": \#(value)}"#)
                    #expect(response.status == .badRequest, "\(field)=\(value)")
                    #expect((response.body["error"] as? [String: String])?["param"] == field, "\(field)=\(value)")
                }
            }
            // The same inside a bulk line: the line is named.
            let bulk = try await api.request(
                .post, "/v1/jobs/bulk", key: api.acme,
                json: #"[{"lane": "demo", "request": {}}, {"lane": "demo", "request": {}, "priority": \#(Self.int64Min)}]"#)
            #expect(bulk.status == .badRequest)
            #expect((bulk.body["error"] as? [String: String])?["message"]?.contains("priority") == true)
            #expect(try await api.queue.counts(lane: "demo").ready == 0)
            #expect(try await api.request(.get, "/healthz", key: nil).status == .ok)
        }
    }

    @Test func timesOutsideTheYears1970To9999AreRefused() async throws {
        try await withAPI { api in
            let late = try await api.request(
                .post, "/v1/jobs", key: api.acme, json: #"{"lane": "demo", "request": {}, "deadline": 999999999999999}"#)
            #expect(late.status == .badRequest && (late.body["error"] as? [String: String])?["param"] == "deadline")
            let fine = try await api.request(
                .post, "/v1/jobs", key: api.acme, json: #"{"lane": "demo", "request": {}, "not_before": 4102444800}"#)
            #expect(fine.status == .accepted)
        }
    }

    @Test func hostileWaitsAre400() async throws {
        try await withAPI { api in
            let id = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            for wait in ["inf", "nan", "1e300", "-1", "0x1p80", "61"] {
                let response = try await api.request(.get, "/v1/jobs/\(id)?wait=\(wait)", key: api.acme)
                #expect(response.status == .badRequest, "wait=\(wait)")
                #expect((response.body["error"] as? [String: String])?["param"] == "wait")
            }
            for wait in ["inf", "1e300", "0x1p80", "nan", "-5", "0", "601"] {
                let response = try await api.request(
                    .post, "/v1/chat/completions", key: api.acme, json: #"{"model": "mock/gpt-4o-mini", "messages": []}"#,
                    headers: [HTTPField.Name("X-Sluice-Wait")!: wait])
                #expect(response.status == .badRequest, "X-Sluice-Wait: \(wait)")
                #expect((response.body["error"] as? [String: String])?["param"] == "X-Sluice-Wait")
            }
            #expect(try await api.request(.get, "/healthz", key: nil).status == .ok)
        }
    }

    @Test func hostileUsagePeriodsAre400() async throws {
        try await withAPI { api in
            for query in [
                "from=1e300", "to=inf", "to=99999999999999999999", "from=nan", "from=-1", "to=0x1p80",
                "from=2015-10-21T07%DE%B0:28:00Z", "from=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%95-06-15",
            ] {
                let response = try await api.request(.get, "/v1/usage?\(query)", key: api.acme)
                #expect(response.status == .badRequest, "\(query)")
                let param = String(query.prefix { $0 != "=" })
                #expect((response.body["error"] as? [String: String])?["param"] == param, "\(query)")
            }
            #expect(try await api.request(.get, "/v1/usage?from=2026-11-01", key: api.acme).status == .ok)
        }
    }

    @Test func onlyConfiguredLanesWithSafeModelNamesAreQueued() async throws {
        try await withAPI { api in
            for lane in ["nosuch/x1", "nosuch", "demo/../../admin", "mock/../../api/x", "mock/a//b", "mock/a?b=1", "mock/a%2e%2e",
                "mock/" + String(repeating: "m", count: 201), "mock/a\\u0000b"]
            {
                let response = try await api.request(
                    .post, "/v1/jobs", key: api.acme, json: #"{"lane": "\#(lane)", "request": {}}"#)
                #expect(response.status == .badRequest, "\(lane)")
                let error = response.body["error"] as? [String: String] ?? [:]
                #expect(error["param"] == "lane", "\(lane)")
            }
            // provider + model is checked the same way, and so is a bulk line (named).
            let split = try await api.request(
                .post, "/v1/jobs", key: api.acme, json: #"{"provider": "mock", "model": "../x", "request": {}}"#)
            #expect(split.status == .badRequest)
            let bulk = try await api.request(
                .post, "/v1/jobs/bulk", key: api.acme,
                json: #"[{"lane": "demo", "request": {}}, {"lane": "nosuch/x", "request": {}}]"#)
            #expect(bulk.status == .badRequest)
            #expect((bulk.body["error"] as? [String: String])?["message"]?.hasPrefix("jobs[1]") == true)
            // The facade resolves provider/model the same way: an unsafe model is no model.
            let facade = try await api.request(
                .post, "/v1/chat/completions", key: api.acme, json: #"{"model": "mock/../../admin", "messages": []}"#,
                headers: [HTTPField.Name("X-Sluice-Wait")!: "1"])
            #expect(facade.status == .notFound)
            // Nothing was queued, and no lane was created for any of them.
            let lanes = try await api.request(.get, "/v1/queues", key: api.admin).body["data"] as? [[String: Any]] ?? []
            #expect(lanes.allSatisfy { ["demo", "mock/gpt-4o-mini"].contains($0["lane"] as? String ?? "") || ($0["ready"] as? Int ?? 0) == 0 })
            #expect(!lanes.contains { ($0["lane"] as? String ?? "").hasPrefix("nosuch") })
            // A configured lane with an ordinary model name still goes in.
            let fine = try await api.request(
                .post, "/v1/jobs", key: api.acme, json: #"{"lane": "mock/meta-llama/Llama-3.1-8B-Instruct:q4", "request": {}}"#)
            #expect(fine.status == .accepted)
        }
    }

    @Test func aKeysMaxPriorityAndLanesAreEnforced() async throws {
        try await withAPI { api in
            // globex has the default max_priority, 0: priority 1 and up is refused, 0 and below go in.
            let high = try await api.request(
                .post, "/v1/jobs", key: api.globex, json: #"{"lane": "demo", "request": {}, "priority": 100}"#)
            #expect(high.status == .forbidden)
            #expect((high.body["error"] as? [String: String])?["param"] == "priority")
            let low = try await api.request(
                .post, "/v1/jobs", key: api.globex, json: #"{"lane": "demo", "request": {}, "priority": -5}"#)
            #expect(low.status == .accepted)
            // acme may go up to 10; an admin key is not held to it.
            #expect(try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"lane": "demo", "request": {}, "priority": 10}"#).status == .accepted)
            #expect(try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"lane": "demo", "request": {}, "priority": 11}"#).status == .forbidden)
            #expect(try await api.request(.post, "/v1/jobs", key: api.admin, json: #"{"lane": "demo", "request": {}, "priority": 100}"#).status == .accepted)

            // Limit globex to the mock provider and the demo lane, through the key API.
            let prefix = String(api.globex.split(separator: "_").prefix(2).joined(separator: "_"))
            let patched = try await api.request(
                .patch, "/v1/keys/\(prefix)", key: api.admin, json: #"{"limits": {"lanes": ["mock", "demo"], "max_priority": 5}}"#)
            #expect(patched.status == .ok)
            let limits = patched.body["limits"] as? [String: Any] ?? [:]
            #expect(limits["lanes"] as? [String] == ["mock", "demo"] && limits["max_priority"] as? Int == 5)
            try await Task.sleep(for: .milliseconds(50))
            let elsewhere = try await api.request(.post, "/v1/jobs", key: api.globex, json: #"{"lane": "other", "request": {}}"#)
            #expect(elsewhere.status == .forbidden)
            #expect((elsewhere.body["error"] as? [String: String])?["param"] == "lane")
            #expect(try await api.request(.post, "/v1/jobs", key: api.globex, json: #"{"lane": "mock/any-model", "request": {}}"#).status == .accepted)
            #expect(try await api.request(.post, "/v1/jobs", key: api.globex, json: #"{"lane": "demo", "request": {}, "priority": 5}"#).status == .accepted)
            // "mock" allows mock/... but not a provider whose name merely starts with it.
            #expect(KeyLimits.allows(["mock"], lane: "mock/x") && !KeyLimits.allows(["mock"], lane: "mockery/x"))
        }
    }

    @Test func madeUpModelsCannotMultiplyLanes() async throws {
        try await withAPI(maxAdHocLanes: 5) { api in
            // One bulk naming 50 made-up models of one provider: refused whole, no lane created.
            let lines = (0..<50).map { #"{"lane": "mock/made-up-\#($0)", "request": {}}"# }.joined(separator: ",")
            let bulk = try await api.request(.post, "/v1/jobs/bulk", key: api.acme, json: "[\(lines)]")
            #expect(bulk.status == .tooManyRequests)
            #expect((bulk.body["error"] as? [String: String])?["type"] == "too_many_lanes")
            #expect(try await api.queue.lanes().filter { $0.hasPrefix("mock/made-up") }.isEmpty)
            // Up to the cap they go in; past it, one at a time, the next is refused too.
            for index in 0..<5 {
                #expect(try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"lane": "mock/m\#(index)", "request": {}}"#).status == .accepted)
            }
            try await Task.sleep(for: .milliseconds(1100))  // past the known-lanes cache
            let sixth = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"lane": "mock/m5", "request": {}}"#)
            #expect(sixth.status == .tooManyRequests)
            // A lane that exists, a provider's own lane and a route's targets are never capped.
            #expect(try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"lane": "mock/m0", "request": {}}"#).status == .accepted)
            #expect(try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"lane": "mock", "request": {}}"#).status == .accepted)
            #expect(try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"model": "split", "request": {}}"#).status == .accepted)
        }
    }

    @Test func aKeyLimitedToSomeLanesMustBeAllowedEveryTargetOfARoute() async throws {
        try await withAPI { api in
            let prefix = String(api.globex.split(separator: "_").prefix(2).joined(separator: "_"))
            // Route "split" goes to mock/a or mock/b: allowed only mock/a, the key may not use it
            // (the job could run on, or fall back to, mock/b).
            _ = try await api.request(.patch, "/v1/keys/\(prefix)", key: api.admin, json: #"{"limits": {"lanes": ["mock/a"]}}"#)
            for _ in 0..<4 {
                let routed = try await api.request(.post, "/v1/jobs", key: api.globex, json: #"{"model": "split", "request": {}}"#)
                #expect(routed.status == .forbidden)
            }
            // A lane with a model allows exactly it, not a longer path under it.
            #expect(try await api.request(.post, "/v1/jobs", key: api.globex, json: #"{"lane": "mock/a", "request": {}}"#).status == .accepted)
            #expect(try await api.request(.post, "/v1/jobs", key: api.globex, json: #"{"lane": "mock/a/x", "request": {}}"#).status == .forbidden)
            _ = try await api.request(.patch, "/v1/keys/\(prefix)", key: api.admin, json: #"{"limits": {"lanes": ["mock"]}}"#)
            #expect(try await api.request(.post, "/v1/jobs", key: api.globex, json: #"{"model": "split", "request": {}}"#).status == .accepted)
        }
    }

    @Test func aFacadeCallOverTheParkedCapQueuesNothing() async throws {
        try await withAPI(maxParkedPerKey: 1) { api in
            // One facade call parks (nothing runs its job); the next is 429 with no job queued.
            func call() async throws -> Int {
                var request = URLRequest(url: URL(string: "http://127.0.0.1:\(api.client.port!)/v1/chat/completions")!)
                request.httpMethod = "POST"
                request.setValue("Bearer \(api.acme)", forHTTPHeaderField: "Authorization")
                request.setValue("30", forHTTPHeaderField: "X-Sluice-Wait")
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                request.httpBody = Data(#"{"model": "mock/gpt-4o-mini", "messages": []}"#.utf8)
                let (_, response) = try await URLSession.shared.data(for: request)
                return (response as? HTTPURLResponse)?.statusCode ?? 0
            }
            async let first = call()
            // Its job queued means it is parked (the wait slot is taken first); its 30 s wait leaves
            // room for the refused calls below on a loaded machine.
            #expect(try await eventually(timeout: .seconds(20)) { try await api.queue.counts(lane: "mock/gpt-4o-mini").ready == 1 })
            for _ in 0..<3 {
                let refused = try await api.request(
                    .post, "/v1/chat/completions", key: api.acme, json: #"{"model": "mock/gpt-4o-mini", "messages": []}"#,
                    headers: [HTTPField.Name("X-Sluice-Wait")!: "2"])
                #expect(refused.status == .tooManyRequests)
            }
            #expect(try await first == 504)  // its job never ran: the wait ran out
            #expect(try await api.queue.counts(lane: "mock/gpt-4o-mini").ready == 1)
        }
    }

    @Test func parkedWaitsAreCappedPerKey() async throws {
        try await withAPI(maxParkedPerKey: 2) { api in
            let id = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            // Two long-polls park (nothing runs the job), each on a connection of its own (the test
            // client has one); the third is refused at once, for this key only.
            func longPoll() async throws -> Int {
                var request = URLRequest(url: URL(string: "http://127.0.0.1:\(api.client.port!)/v1/jobs/\(id)?wait=30")!)
                request.setValue("Bearer \(api.acme)", forHTTPHeaderField: "Authorization")
                let (_, response) = try await URLSession.shared.data(for: request)
                return (response as? HTTPURLResponse)?.statusCode ?? 0
            }
            async let first = longPoll()
            async let second = longPoll()
            // Nothing shows that they are parked: a pause, well inside their 30 s waits.
            try await Task.sleep(for: .seconds(5))
            let third = try await api.request(.get, "/v1/jobs/\(id)?wait=3", key: api.acme)
            #expect(third.status == .tooManyRequests)
            #expect((third.body["error"] as? [String: String])?["type"] == "too_many_waits")
            let stranger = try await api.request(.get, "/v1/jobs/\(id)?wait=0", key: api.globex)
            #expect(stranger.status == .notFound)  // another key is not held by acme's waits
            #expect(try await [first, second] == [200, 200])
            // Once they are done, the key may wait again.
            #expect(try await api.request(.get, "/v1/jobs/\(id)?wait=0.1", key: api.acme).status == .ok)
        }
    }
}
