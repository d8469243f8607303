import Foundation
import HTTPTypes
import SluiceCore
import SluiceQueue
import Testing

/// The job page's Retry button (POST /ui/jobs/{id}/retry) over real Redis and real HTTP.
@Suite(.timeLimit(.minutes(2))) struct DashboardRetryTests {
    @Test func retryButtonMakesTheNewJobOnlyWithTheSessionsToken() async throws {
        try await withAPI { api in
            let id = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            let leased = try #require(try await api.queue.lease(lane: "demo", count: 1, duration: .seconds(30)).first)
            // A fatal failure: the job is failed, which may be retried like a dead one.
            _ = try await api.queue.fail(leased.id, token: leased.token, attempt: leased.attempt, error: "bad request", retryable: false)

            var browser = DashboardBrowser(api)
            _ = try await browser.logIn(api.acme)
            let page = try await browser.get("/ui/jobs/\(id)")
            #expect(page.status == .ok)
            #expect(page.html.contains("id=\"retry\""))

            // Without the token, or with another: 403, and no job is made.
            #expect(try await browser.post("/ui/jobs/\(id)/retry", form: [:]).status == .forbidden)
            #expect(try await browser.post("/ui/jobs/\(id)/retry", form: ["csrf": DashboardTestsSupport.otherToken]).status == .forbidden)
            #expect(try await api.request(.get, "/v1/jobs/\(id)", key: api.acme).body["retried_as"] == nil)

            let retried = try await browser.post("/ui/jobs/\(id)/retry", form: ["csrf": try #require(page.csrf)])
            #expect(retried.status == .seeOther)
            let location = try #require(retried.location)
            let new = try #require(location.firstMatch(of: /^\/ui\/jobs\/(job_[^?]+)\?done=retried$/).map { String($0.1) })
            #expect(new != id)
            let newPage = try await browser.get(location)
            #expect(newPage.html.contains("This job retries \(id)"))
            #expect(try await api.request(.get, "/v1/jobs/\(new)", key: api.acme).body["status"] as? String == "queued")
            // The old job's page links to the new one and offers no second retry.
            let oldPage = try await browser.get("/ui/jobs/\(id)")
            #expect(oldPage.html.contains("id=\"retried-as\"") && oldPage.html.contains(new))
            #expect(!oldPage.html.contains("id=\"retry\""))
            // The new job is queued: 409.
            #expect(try await browser.post("/ui/jobs/\(new)/retry", form: ["csrf": try #require(page.csrf)]).status == .conflict)

            // A read-only key gets no Retry button.
            var reader = DashboardBrowser(api)
            _ = try await reader.logIn(api.acmeReader)
            let other = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            let again = try #require(try await api.queue.lease(lane: "demo", count: 2, duration: .seconds(30)).first { $0.id.rawValue == other })
            _ = try await api.queue.fail(again.id, token: again.token, attempt: again.attempt, error: "bad request", retryable: false)
            let readOnly = try await reader.get("/ui/jobs/\(other)")
            #expect(readOnly.status == .ok)
            #expect(!readOnly.html.contains("id=\"retry\""))
        }
    }
}
