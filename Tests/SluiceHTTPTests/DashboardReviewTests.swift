import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceCore
@testable import SluiceHTTP
import SluiceQueue
import SluiceRedis
import Testing

/// The dashboard's review findings (issue 16): links that carry a lane name, the jobs list's
/// light read, and a login ending the browser's previous session.
@Suite(.timeLimit(.minutes(2))) struct DashboardReviewTests {
    /// A lane name that a query string must encode: each of these would cut or change it.
    static let hostileLane = "demo/a&b+c#d%e=g"

    @Test func linksEncodeEveryCharacterAQueryWouldRead() {
        #expect(DashboardViews.link("/ui/jobs", [("lane", Self.hostileLane)]) == "/ui/jobs?lane=demo/a%26b%2Bc%23d%25e%3Dg")
        #expect(DashboardViews.link("/ui/usage.csv", [("tenant", "a b")]) == "/ui/usage.csv?tenant=a%20b")
        #expect(DashboardViews.link("/ui/jobs", [("lane", "mock/a"), ("state", nil), ("tenant", "t")]) == "/ui/jobs?lane=mock/a&tenant=t")
        #expect(DashboardViews.link("/ui/jobs", [("lane", nil)]) == "/ui/jobs")
    }

    @Test func theOverviewsLaneLinkListsThatLanesJobs() async throws {
        try await withAPI { api in
            let id = try await api.queue.enqueue(JobSpec(lane: Self.hostileLane, tenant: "ops", payload: Array(#"{"x": 1}"#.utf8))).id
            // Another lane whose name is the hostile one cut at its '&': a link read wrongly lands there.
            let other = try await api.queue.enqueue(JobSpec(lane: "demo/a", tenant: "ops", payload: Array(#"{"x": 2}"#.utf8))).id
            var admin = DashboardBrowser(api)
            _ = try await admin.logIn(api.admin)
            let overview = try await admin.get("/ui/overview")
            #expect(overview.status == .ok)
            let href = try #require(
                overview.html.firstMatch(of: /<td class="lane"><a href="([^"]+)">demo\/a&amp;b/).map { String($0.1) })
            // The href as a browser reads it (HTML entities undone), followed.
            let list = try await admin.get(href.replacingOccurrences(of: "&amp;", with: "&"))
            #expect(list.status == .ok)
            #expect(list.html.contains(id.rawValue))
            #expect(!list.html.contains(other.rawValue))
        }
    }

    @Test func theJobsListReadsNoRequestOrResult() async throws {
        try await withAPI { api in
            // Four jobs of 256 KB requests: a page that read whole jobs would move 1 MB from Redis.
            let payload = Array(("{\"x\": \"" + String(repeating: "y", count: 256 << 10) + "\"}").utf8)
            var ids: [JobID] = []
            for _ in 0..<4 { ids.append(try await api.queue.enqueue(JobSpec(lane: "demo", tenant: "acme", payload: payload)).id) }
            var browser = DashboardBrowser(api)
            _ = try await browser.logIn(api.acme)
            let before = try await Self.bytesSent(api.queue.redis)
            let page = try await browser.get("/ui/jobs")
            let sent = try await Self.bytesSent(api.queue.redis) - before
            #expect(page.status == .ok)
            for id in ids { #expect(page.html.contains(id.rawValue)) }
            #expect(page.html.contains("<td>demo</td><td><span class=\"state state-queued\">queued</span></td><td class=\"num\">0</td>"))
            #expect(sent < 100_000, "Redis sent \(sent) bytes for one page of four listed jobs")

            // The light read itself: the listed fields, no request.
            let listed = try await api.queue.list(tenant: "acme", limit: 10, fields: JobQueue.listedFields).jobs
            #expect(Set(listed.map(\.id)) == Set(ids))
            for job in listed {
                #expect(job.payload.isEmpty)
                #expect(job.lane == "demo" && job.tenant == "acme" && job.state == .queued && job.createdAt.value > 0)
            }
            // A job gone since the index was read is left out, as with whole reads.
            _ = try await api.queue.redis.send("DEL", KeyLayout.job(ids[0]))
            #expect(try await api.queue.get(ids[0], fields: JobQueue.listedFields) == nil)
        }
    }

    @Test func aLoginEndsTheBrowsersPreviousSession() async throws {
        try await withAPI { api in
            var browser = DashboardBrowser(api)
            _ = try await browser.logIn(api.acme)
            let first = try #require(browser.cookies["sluice_session"])
            // Someone else logs in at the same browser, from a login form another tab opened
            // (the login page itself sends a signed-in browser on): the first session is gone
            // from Redis at once.
            var tab = DashboardBrowser(api)
            let form = try await tab.get("/ui/login")
            browser.cookies["sluice_login"] = try #require(tab.cookies["sluice_login"])
            let second = try await browser.post("/ui/login", form: ["key": api.globex, "csrf": try #require(form.csrf)])
            #expect(second.status == .seeOther)
            #expect(try #require(browser.cookies["sluice_session"]) != first)
            #expect(try await browser.get("/ui/jobs").status == .ok)
            var copied = DashboardBrowser(api)
            copied.cookies["sluice_session"] = first
            let stale = try await copied.get("/ui/jobs")
            #expect(stale.status == .seeOther)
            #expect(stale.location == "/ui/login")
        }
    }

    /// Bytes Redis has written to its clients so far.
    static func bytesSent(_ redis: RedisClient) async throws -> Int {
        let info = try await redis.send("INFO", "stats").string ?? ""
        let line = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("total_net_output_bytes:") }
        return line.flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
    }
}
