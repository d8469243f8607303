import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceQueue
import Testing

@Suite struct ListingRoutesTests {
    @Test func listShowsOnlyTheTenantsOwnJobsAndPages() async throws {
        try await withAPI { api in
            var mine: [String] = []
            for _ in 0..<5 {
                mine.append(try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String))
                _ = try await api.request(.post, "/v1/jobs", key: api.globex, json: simpleJob)
                try await Task.sleep(for: .milliseconds(2))
            }
            let first = try await api.request(.get, "/v1/jobs?limit=3", key: api.acmeReader)
            #expect(first.status == .ok)
            let firstIDs = (first.body["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            #expect(firstIDs == Array(mine.reversed().prefix(3)))
            #expect(first.body["has_more"] as? Bool == true)
            let cursor = try #require(first.body["next_cursor"] as? String)
            let second = try await api.request(.get, "/v1/jobs?limit=3&cursor=\(cursor)", key: api.acme)
            let secondIDs = (second.body["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            #expect(secondIDs == Array(mine.reversed().dropFirst(3)))
            #expect(second.body["has_more"] as? Bool == false)
            #expect(second.body["next_cursor"] is NSNull)

            // Filters: a lane with none of them, a state.
            let none = try await api.request(.get, "/v1/jobs?lane=elsewhere", key: api.acme)
            #expect((none.body["data"] as? [Any])?.isEmpty == true)
            _ = try await api.request(.post, "/v1/jobs/\(mine[0])/cancel", key: api.acme)
            let cancelled = try await api.request(.get, "/v1/jobs?state=cancelled", key: api.acme)
            #expect((cancelled.body["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [mine[0]])

            // Another tenant's jobs: only with the admin scope.
            #expect(try await api.request(.get, "/v1/jobs?tenant=globex", key: api.acme).status == .forbidden)
            let asAdmin = try await api.request(.get, "/v1/jobs?tenant=acme&limit=100", key: api.admin)
            #expect((asAdmin.body["data"] as? [Any])?.count == 5)
        }
    }

    @Test func badListParametersAre400NamingTheParameter() async throws {
        try await withAPI { api in
            for (query, param) in [
                ("state=running", "state"), ("limit=0", "limit"), ("limit=101", "limit"), ("limit=ten", "limit"),
                ("cursor=abc", "cursor"), ("colour=blue", "colour"),
            ] {
                let response = try await api.request(.get, "/v1/jobs?\(query)", key: api.acme)
                #expect(response.status == .badRequest, "\(query)")
                #expect((response.body["error"] as? [String: String])?["param"] == param, "\(query)")
            }
            #expect(try await api.request(.get, "/v1/jobs", key: nil).status == .unauthorized)
        }
    }

    @Test func eventsGiveTheTimelineToItsTenantOnly() async throws {
        try await withAPI { api in
            let id = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            let leased = try #require(try await api.queue.lease(lane: "demo", count: 1).first)
            _ = try await api.queue.complete(leased.id, token: leased.token, result: Array(#"{"ok": true}"#.utf8))
            let events = try await api.request(.get, "/v1/jobs/\(id)/events", key: api.acmeReader)
            #expect(events.status == .ok)
            let data = try #require(events.body["data"] as? [[String: Any]])
            #expect(data.compactMap { $0["status"] as? String } == ["queued", "leased", "succeeded"])
            #expect(data[1]["info"] as? String == "attempt 1")
            #expect(data.allSatisfy { ($0["at"] as? Double ?? 0) > 1_700_000_000 })
            #expect(try await api.request(.get, "/v1/jobs/\(id)/events", key: api.globex).status == .notFound)
            #expect(try await api.request(.get, "/v1/jobs/\(id)/events", key: api.admin).status == .ok)
            let unknown = JobID.generate(lane: LaneTag(lane: "demo"), unixMillis: 1).rawValue
            #expect(try await api.request(.get, "/v1/jobs/\(unknown)/events", key: api.acme).status == .notFound)
        }
    }
}
