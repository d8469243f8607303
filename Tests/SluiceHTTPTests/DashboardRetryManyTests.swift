import Foundation
import HTTPTypes
import SluiceCore
import SluiceQueue
import Testing

/// The jobs list's "Retry these" (GET /ui/retry, its confirmation, then POST /ui/retry) over real
/// Redis and real HTTP.
@Suite(.timeLimit(.minutes(2))) struct DashboardRetryManyTests {
    @Test func retryTheseConfirmsTheCountThenRetriesThemOnlyWithTheToken() async throws {
        try await withAPI { api in
            var dead: [String] = []
            for _ in 0..<3 {
                let id = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"lane": "demo", "max_attempts": 1, "request": {"n": 1}}"#).body["id"] as? String)
                let leased = try #require(try await api.queue.lease(lane: "demo", count: 1, duration: .seconds(30)).first)
                #expect(leased.id.rawValue == id)
                _ = try await api.queue.fail(leased.id, token: leased.token, attempt: leased.attempt, error: "upstream 500", retryable: true)
                dead.append(id)
            }
            var browser = DashboardBrowser(api)
            _ = try await browser.logIn(api.acme)
            let list = try await browser.get("/ui/jobs?state=dead&lane=demo")
            #expect(list.status == .ok)
            let link = try #require(
                list.html.firstMatch(of: /href="([^"]+)" id="retry-these"/).map { String($0.1).replacingOccurrences(of: "&amp;", with: "&") },
                "\(list.html)")
            #expect(link == "/ui/retry?state=dead&lane=demo")
            // Not offered for a listing of queued jobs.
            #expect(!(try await browser.get("/ui/jobs?state=queued")).html.contains("id=\"retry-these\""))

            let confirm = try await browser.get(link)
            #expect(confirm.status == .ok)
            #expect(confirm.html.contains("3 dead job(s)"), "\(confirm.html)")
            #expect(confirm.html.contains("id=\"retry-confirm\""))
            let form = ["state": "dead", "lane": "demo", "before": ""]

            // Without the token: 403, nothing retried.
            #expect(try await browser.post("/ui/retry", form: form).status == .forbidden)
            for id in dead { #expect(try await api.request(.get, "/v1/jobs/\(id)", key: api.acme).body["retried_as"] == nil) }

            var withToken = form
            withToken["csrf"] = try #require(confirm.csrf)
            let done = try await browser.post("/ui/retry", form: withToken)
            #expect(done.status == .ok)
            #expect(done.html.contains("Retried 3 job(s)."), "\(done.html)")
            for id in dead {
                let old = try await api.request(.get, "/v1/jobs/\(id)", key: api.acme)
                let new = try #require(old.body["retried_as"] as? String)
                #expect(done.html.contains(new))
                #expect(try await api.request(.get, "/v1/jobs/\(new)", key: api.acme).body["status"] as? String == "queued")
            }
            // Nothing is left to retry now.
            #expect(try await browser.get(link).html.contains("0 dead job(s)"))
            // Only dead or failed jobs: 400.
            #expect(try await browser.get("/ui/retry?state=queued").status == .badRequest)
        }
    }
}
