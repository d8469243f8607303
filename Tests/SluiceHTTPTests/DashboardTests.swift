import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceCore
@testable import SluiceHTTP
import SluiceQueue
@testable import SluiceStore
import SluiceWebhooks
import Testing

/// A browser's view of the dashboard: its cookies, sent back as a browser would.
struct DashboardBrowser {
    let client: any TestClientProtocol
    var cookies: [String: String] = [:]

    struct Page {
        let status: HTTPResponse.Status
        let headers: HTTPFields
        let html: String

        /// The first `name="csrf" value="…"` of a form on the page.
        var csrf: String? { html.firstMatch(of: /name="csrf" value="([^"]+)"/).map { String($0.1) } }
        var location: String? { headers[.location] }
    }

    init(_ api: Fixture) { client = api.client }
    init(client: any TestClientProtocol) { self.client = client }

    mutating func get(_ uri: String) async throws -> Page { try await send(.get, uri) }

    mutating func post(_ uri: String, form: [String: String]) async throws -> Page {
        let body = form.map { name, value in
            "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
        }.joined(separator: "&")
        return try await send(.post, uri, body: body)
    }

    mutating func send(_ method: HTTPRequest.Method, _ uri: String, body: String? = nil) async throws -> Page {
        var headers: HTTPFields = [:]
        if !cookies.isEmpty { headers[.cookie] = cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }
        if body != nil { headers[.contentType] = "application/x-www-form-urlencoded" }
        let response = try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
        for line in response.headers[values: .setCookie] {
            let pair = line.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let value = pair.count > 1 ? String(pair[1]) : ""
            if value.isEmpty || line.contains("Max-Age=0") { cookies[String(pair[0])] = nil } else { cookies[String(pair[0])] = value }
        }
        return Page(status: response.status, headers: response.headers, html: String(buffer: response.body))
    }

    /// Logs in with `key` through the login form, as a person would.
    mutating func logIn(_ key: String) async throws -> Page {
        let form = try await get("/ui/login")
        return try await post("/ui/login", form: ["key": key, "csrf": try #require(form.csrf)])
    }
}

// A stream or a page that never answers fails its test instead of hanging CI.
@Suite(.timeLimit(.minutes(2))) struct DashboardTests {
    @Test func loginGivesAStrictHttpOnlySessionCookieAndPagesForbidInlineScript() async throws {
        try await withAPI { api in
            var browser = DashboardBrowser(api)
            let anonymous = try await browser.get("/ui/overview")
            #expect(anonymous.status == .seeOther)
            #expect(anonymous.location == "/ui/login")

            let wrong = try await browser.logIn("sluice_deadbeef_" + String(repeating: "x", count: 43))
            #expect(wrong.status == .unauthorized)
            #expect(wrong.html.contains("not valid"))
            #expect(browser.cookies["sluice_session"] == nil)

            let form = try await browser.get("/ui/login")
            let loggedIn = try await browser.post("/ui/login", form: ["key": api.admin, "csrf": try #require(form.csrf)])
            #expect(loggedIn.status == .seeOther)
            #expect(loggedIn.location == "/ui/overview")
            let sessionCookie = try #require(loggedIn.headers[values: .setCookie].first { $0.hasPrefix("sluice_session=") })
            #expect(sessionCookie.contains("HttpOnly"))
            #expect(sessionCookie.contains("SameSite=Strict"))
            #expect(sessionCookie.contains("Path=/ui"))
            // Plain HTTP, and no proxy trusted: not Secure (a browser would drop it on http://).
            #expect(!sessionCookie.contains("Secure"))
            // The session id is random, not the key.
            #expect(!sessionCookie.contains(api.admin))

            let overview = try await browser.get("/ui/overview")
            #expect(overview.status == .ok)
            let policy = try #require(overview.headers[.contentSecurityPolicy])
            #expect(policy.contains("default-src 'self'"))
            #expect(policy.contains("frame-ancestors 'none'"))
            #expect(!policy.contains("unsafe-inline"))
            #expect(overview.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
            #expect(overview.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
            #expect(overview.headers[.cacheControl] == "no-store")
            // Nothing inline for the policy to block: every script has a src, no element a style.
            for page in [overview, form] {
                #expect(page.html.firstMatch(of: /<script(?![^>]*\bsrc=)/) == nil)
                #expect(!page.html.contains("style="))
                #expect(!page.html.contains("<style"))
            }
            let script = try await browser.get("/ui/static/dashboard.js")
            #expect(script.status == .ok)
            #expect(script.headers[.contentType]?.hasPrefix("text/javascript") == true)
            #expect(try await browser.get("/ui/static/nothing.js").status == .notFound)
        }
    }

    @Test func postsWithoutTheSessionsTokenAre403AndChangeNothing() async throws {
        try await withAPI { api in
            let id = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            var browser = DashboardBrowser(api)
            // A login form posted without the token its page set (a cross-site POST).
            let forged = try await browser.post("/ui/login", form: ["key": api.acme, "csrf": "nope"])
            #expect(forged.status == .forbidden)
            #expect(browser.cookies["sluice_session"] == nil)

            _ = try await browser.logIn(api.acme)
            #expect(browser.cookies["sluice_session"] != nil)
            let missing = try await browser.post("/ui/jobs/\(id)/cancel", form: [:])
            #expect(missing.status == .forbidden)
            #expect(missing.headers[.contentType]?.hasPrefix("text/html") == true)
            let wrong = try await browser.post("/ui/jobs/\(id)/cancel", form: ["csrf": DashboardTestsSupport.otherToken])
            #expect(wrong.status == .forbidden)
            #expect(try await api.queue.get(try #require(JobID(id)))?.state == .queued)
            #expect(try await browser.post("/ui/logout", form: [:]).status == .forbidden)
            #expect(try await browser.get("/ui/jobs").status == .ok)
        }
    }

    @Test func cancelThroughTheJobPageFormCancelsTheJob() async throws {
        try await withAPI { api in
            let id = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            var browser = DashboardBrowser(api)
            _ = try await browser.logIn(api.acme)
            let page = try await browser.get("/ui/jobs/\(id)")
            #expect(page.status == .ok)
            #expect(page.html.contains("id=\"cancel\""))
            #expect(page.html.contains("&quot;hi&quot;"))  // the request, escaped
            #expect(page.html.contains("queued"))
            let cancelled = try await browser.post("/ui/jobs/\(id)/cancel", form: ["csrf": try #require(page.csrf)])
            #expect(cancelled.status == .seeOther)
            #expect(cancelled.location == "/ui/jobs/\(id)?done=cancelled")
            #expect(try await api.queue.get(try #require(JobID(id)))?.state == .cancelled)
            let after = try await browser.get(try #require(cancelled.location))
            #expect(after.html.contains("The job was cancelled."))
            #expect(after.html.contains("state-cancelled"))
            #expect(!after.html.contains("id=\"cancel\""))
            // Again: it has finished.
            #expect(try await browser.post("/ui/jobs/\(id)/cancel", form: ["csrf": try #require(page.csrf)]).status == .conflict)

            // A read-only key sees the job but gets no cancel form, and its POST is refused.
            let other = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            var reader = DashboardBrowser(api)
            _ = try await reader.logIn(api.acmeReader)
            let readOnly = try await reader.get("/ui/jobs/\(other)")
            #expect(readOnly.status == .ok)
            #expect(!readOnly.html.contains("id=\"cancel\""))
            #expect(try await reader.post("/ui/jobs/\(other)/cancel", form: ["csrf": try #require(readOnly.csrf)]).status == .forbidden)
            #expect(try await api.queue.get(try #require(JobID(other)))?.state == .queued)
        }
    }

    @Test func aTenantSeesOnlyItsOwnJobsAndAnAdminSeesAll() async throws {
        try await withAPI { api in
            let mine = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            let theirs = try #require(try await api.request(.post, "/v1/jobs", key: api.globex, json: simpleJob).body["id"] as? String)
            var acme = DashboardBrowser(api)
            #expect(try await acme.logIn(api.acme).location == "/ui/jobs")
            let list = try await acme.get("/ui/jobs")
            #expect(list.status == .ok)
            #expect(list.html.contains(mine))
            #expect(!list.html.contains(theirs))
            #expect(try await acme.get("/ui/jobs/\(theirs)").status == .notFound)
            #expect(try await acme.get("/ui/jobs?tenant=globex").status == .forbidden)
            #expect(try await acme.get("/ui/overview").status == .forbidden)
            #expect(try await acme.get("/ui/overview.json").status == .forbidden)
            // Created before a time: 2020 has none of them; an hour from now has it.
            #expect(!(try await acme.get("/ui/jobs?before=2020-01-01").html.contains(mine)))
            let later = Int(Date().timeIntervalSince1970) + 3600
            #expect(try await acme.get("/ui/jobs?before=\(later)").html.contains(mine))
            #expect(try await acme.get("/ui/jobs?before=soon").status == .badRequest)
            let filtered = try await acme.get("/ui/jobs?state=succeeded")
            #expect(!filtered.html.contains(mine))
            #expect(try await acme.get("/ui/jobs?state=running").status == .badRequest)

            var admin = DashboardBrowser(api)
            _ = try await admin.logIn(api.admin)
            let globex = try await admin.get("/ui/jobs?tenant=globex")
            #expect(globex.html.contains(theirs))
            #expect(!globex.html.contains(mine))
            #expect(try await admin.get("/ui/jobs/\(mine)").status == .ok)
        }
    }

    @Test func overviewShowsEachLanesDepthFromRedis() async throws {
        try await withAPI { api in
            var admin = DashboardBrowser(api)
            _ = try await admin.logIn(api.admin)
            for _ in 0..<3 { _ = try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob) }
            let page = try await admin.get("/ui/overview")
            #expect(page.status == .ok)
            #expect(page.html.contains("data-lane=\"demo\""))
            #expect(page.html.contains("<td class=\"num\" data-field=\"ready\">3</td>"))

            _ = try await api.queue.lease(lane: "demo", count: 1)
            // The overview reads Redis at most every 1.5 s: wait that out, generously.
            var lane: [String: Any] = [:]
            for _ in 0..<30 {
                try await Task.sleep(for: .milliseconds(500))
                let json = try await admin.get("/ui/overview.json")
                #expect(json.status == .ok)
                let lanes = (try JSONSerialization.jsonObject(with: Data(json.html.utf8)) as? [String: Any])?["lanes"] as? [[String: Any]]
                lane = lanes?.first { $0["lane"] as? String == "demo" } ?? [:]
                if lane["leased"] as? Int == 1 { break }
            }
            #expect(lane["ready"] as? Int == 2)
            #expect(lane["leased"] as? Int == 1)
            #expect((lane["depth_history"] as? [Int])?.isEmpty == false)
        }
    }

    @Test func providersScalingAndBatchesPagesShowTheStateTheAPIReports() async throws {
        try await withAPI { api in
            _ = try await api.request(
                .post, "/v1/jobs", key: api.acme, json: #"{"provider": "mock", "model": "a", "request": {"x": 1}}"#)
            var admin = DashboardBrowser(api)
            _ = try await admin.logIn(api.admin)
            let providers = try await admin.get("/ui/providers")
            #expect(providers.status == .ok)
            // The configured limits of the fixture's provider, and its lane with the job ready.
            #expect(providers.html.contains("data-provider=\"mock\""))
            #expect(providers.html.contains("60 requests/min"))
            #expect(providers.html.contains("4 at once"))
            #expect(providers.html.contains("<tr data-lane=\"mock/a\"><td><a href=\"/ui/jobs?lane=mock/a\">mock/a</a></td><td class=\"num\">1</td>"))
            let scaling = try await admin.get("/ui/scaling")
            #expect(scaling.status == .ok)
            #expect(scaling.html.contains("data-pool=\"default\""))

            // This API serves no batches: the page says so rather than failing.
            let batches = try await admin.get("/ui/batches")
            #expect(batches.status == .ok)
            #expect(batches.html.contains("id=\"no-batches-served\""))

            var acme = DashboardBrowser(api)
            _ = try await acme.logIn(api.acme)
            #expect(try await acme.get("/ui/batches?tenant=globex").status == .forbidden)
            #expect(try await acme.get("/ui/providers").status == .forbidden)
            #expect(try await acme.get("/ui/scaling").status == .ok)
        }
    }

    @Test func keysPageCreatesAKeyShownOnceAndRevokesIt() async throws {
        try await withAPI { api in
            var admin = DashboardBrowser(api)
            _ = try await admin.logIn(api.admin)
            let page = try await admin.get("/ui/keys")
            #expect(page.status == .ok)
            let csrf = try #require(page.csrf)
            // Without the token: refused, and no key is made.
            let before = try await api.keyCount()
            #expect(try await admin.post("/ui/keys", form: ["tenant": "initech", "scope_read": "on"]).status == .forbidden)
            #expect(try await api.keyCount() == before)

            let created = try await admin.post("/ui/keys", form: ["csrf": csrf, "tenant": "initech", "scope_read": "on", "scope_submit": "on"])
            #expect(created.status == .created)
            #expect(created.headers[.cacheControl] == "no-store")
            let secret = try #require(created.html.firstMatch(of: /id="secret">(sluice_[a-z0-9]{8}_[A-Za-z0-9_-]{43})</).map { String($0.1) })
            #expect(try await api.request(.get, "/v1/jobs", key: secret).status == .ok)
            // Shown once: the list has its prefix, never the secret.
            let list = try await admin.get("/ui/keys")
            let prefix = String(secret.split(separator: "_").prefix(2).joined(separator: "_"))
            #expect(list.html.contains("data-key=\"\(prefix)\""))
            #expect(!list.html.contains(secret))
            // A bad tenant and no scope are refused on the page.
            #expect(try await admin.post("/ui/keys", form: ["csrf": csrf, "tenant": "a:b", "scope_read": "on"]).status == .badRequest)
            #expect(try await admin.post("/ui/keys", form: ["csrf": csrf, "tenant": "initech"]).status == .badRequest)

            #expect(try await admin.post("/ui/keys/\(prefix)/revoke", form: [:]).status == .forbidden)
            #expect(try await api.request(.get, "/v1/jobs", key: secret).status == .ok)
            let revoked = try await admin.post("/ui/keys/\(prefix)/revoke", form: ["csrf": csrf])
            #expect(revoked.status == .seeOther)
            #expect(revoked.location == "/ui/keys?done=revoked")
            // At once, despite the API's cache of keys found valid.
            #expect(try await api.request(.get, "/v1/jobs", key: secret).status == .unauthorized)
            #expect(try await admin.post("/ui/keys/sluice_nothere/revoke", form: ["csrf": csrf]).status == .notFound)

            var acme = DashboardBrowser(api)
            _ = try await acme.logIn(api.acme)
            #expect(try await acme.get("/ui/keys").status == .forbidden)
            let acmeToken = try #require(try await acme.get("/ui/jobs").csrf)
            #expect(try await acme.post("/ui/keys", form: ["csrf": acmeToken, "tenant": "acme", "scope_admin": "on"]).status == .forbidden)
            #expect(try await api.keyCount() == before + 1)
        }
    }

    @Test func usagePageAndItsCSVReadTheLedgerForTheKeysOwnTenant() async throws {
        try await withAPI { api in
            var acme = DashboardBrowser(api)
            _ = try await acme.logIn(api.acme)
            let page = try await acme.get("/ui/usage?group_by=tenant")
            #expect(page.status == .ok)
            #expect(page.html.contains("id=\"no-usage\""))
            let link = try #require(page.html.firstMatch(of: /id="csv"/) != nil ? page.html.firstMatch(of: /href="(\/ui\/usage\.csv[^"]*)"/).map { String($0.1) } : nil)
            let csv = try await acme.get(link.replacingOccurrences(of: "&amp;", with: "&"))
            #expect(csv.status == .ok)
            #expect(csv.headers[.contentType] == "text/csv; charset=utf-8")
            #expect(csv.headers[.contentDisposition]?.hasPrefix("attachment; filename=\"sluice-usage-tenant-") == true)
            #expect(csv.html == "tenant,requests,succeeded,input_tokens,output_tokens,cost_usd,cached,saved_usd,batched,batch_saved_usd\r\n")
            // Another tenant's usage is an admin's; bad periods are 400 on the page.
            #expect(try await acme.get("/ui/usage?tenant=globex").status == .forbidden)
            #expect(try await acme.get("/ui/usage?from=yesterday").status == .badRequest)
            #expect(try await acme.get("/ui/usage?from=2026-11-02&to=2026-11-01").status == .badRequest)
            #expect(try await acme.get("/ui/usage.csv?group_by=colour").status == .badRequest)
        }
    }

    @Test func cookiesAreSecureOnlyBehindATrustedProxysHTTPS() {
        let https: HTTPFields = [HTTPField.Name("X-Forwarded-Proto")!: "https"]
        #expect(DashboardController.isSecure(https, trustForwardedProto: true))
        // A client may send the header itself: untrusted, it changes nothing.
        #expect(!DashboardController.isSecure(https, trustForwardedProto: false))
        #expect(!DashboardController.isSecure([HTTPField.Name("X-Forwarded-Proto")!: "http"], trustForwardedProto: true))
        #expect(!DashboardController.isSecure([:], trustForwardedProto: true))
        #expect(!SluiceAPI.DashboardSettings().trustForwardedProto)
    }

    @Test func usageCSVQuotesCellsAndDefusesFormulas() {
        let rows = [
            UsageRow(group: "gpt-4o-mini", requests: 3, succeeded: 2, inputTokens: 10, outputTokens: 20, cost: 0.0015),
            UsageRow(group: "=HYPERLINK(\"x\")", requests: 1, succeeded: 1, inputTokens: 1, outputTokens: 1, cost: .nan),
            UsageRow(group: "a,b", requests: 1, succeeded: 0, inputTokens: 0, outputTokens: 0, cost: 0),
        ]
        let lines = DashboardViews.usageCSV(rows, grouping: "model").components(separatedBy: "\r\n")
        #expect(lines[0] == "model,requests,succeeded,input_tokens,output_tokens,cost_usd,cached,saved_usd,batched,batch_saved_usd")
        #expect(lines[1] == "gpt-4o-mini,3,2,10,20,0.001500,0,0.000000,0,0.000000")
        #expect(lines[2].hasPrefix("\"'=HYPERLINK(\"\"x\"\")\",1,1,1,1,0.000000,"))
        #expect(lines[3].hasPrefix("\"a,b\",1,0"))
        #expect(lines.count == 5 && lines[4].isEmpty)
    }

    @Test func deadLettersListDeadJobsAndReplayADeadDelivery() async throws {
        try await withAPI { api in
            // A job of acme's that used up its one attempt, and its webhook delivery, dead too.
            let id = try #require(
                try await api.request(
                    .post, "/v1/jobs", key: api.acme,
                    json: #"{"lane": "demo", "request": {"x": 1}, "max_attempts": 1}"#
                ).body["id"] as? String)
            let jobID = try #require(JobID(id))
            let leased = try #require(try await api.queue.lease(lane: "demo", count: 1).first)
            _ = try await api.queue.fail(jobID, token: leased.token, attempt: leased.attempt, error: "upstream 500", retryable: true)
            #expect(try await api.queue.get(jobID)?.state == .dead)
            let webhooks = WebhookStore(redis: api.queue.redis)
            #expect(try await webhooks.create(job: jobID, url: "http://127.0.0.1:9/hook", key: nil, type: "job.dead", body: Array("{}".utf8)))
            let delivery = WebhookStore.deliveryID(job: jobID)
            try await webhooks.record(delivery, status: "dead", code: 500, error: "receiver failed")

            var admin = DashboardBrowser(api)
            _ = try await admin.logIn(api.admin)
            let page = try await admin.get("/ui/dead?tenant=acme")
            #expect(page.status == .ok)
            #expect(page.html.contains("data-job=\"\(id)\""))
            #expect(page.html.contains("data-delivery=\"\(delivery)\""))
            #expect(page.html.contains("/ui/webhooks/\(delivery)/replay"))
            #expect(try await admin.post("/ui/webhooks/\(delivery)/replay", form: [:]).status == .forbidden)
            #expect(try await webhooks.delivery(delivery)?.status == "dead")
            let replayed = try await admin.post("/ui/webhooks/\(delivery)/replay", form: ["csrf": try #require(page.csrf)])
            #expect(replayed.status == .seeOther)
            #expect(replayed.location == "/ui/dead?done=replayed")
            #expect(try await webhooks.delivery(delivery)?.status == "pending")
            #expect(!(try await admin.get("/ui/dead").html.contains("data-delivery=\"\(delivery)\"")))

            // A tenant sees its dead jobs, not the deliveries of every tenant; another tenant
            // cannot replay acme's delivery.
            try await webhooks.record(delivery, status: "dead", code: 500, error: "receiver failed again")
            var acme = DashboardBrowser(api)
            _ = try await acme.logIn(api.acme)
            let own = try await acme.get("/ui/dead")
            #expect(own.html.contains("data-job=\"\(id)\""))
            #expect(!own.html.contains("dead-deliveries"))
            let jobPage = try await acme.get("/ui/jobs/\(id)")
            #expect(jobPage.html.contains("/ui/webhooks/\(delivery)/replay"))
            var globex = DashboardBrowser(api)
            _ = try await globex.logIn(api.globex)
            let globexToken = try #require(try await globex.get("/ui/dead").csrf)
            #expect(try await globex.post("/ui/webhooks/\(delivery)/replay", form: ["csrf": globexToken]).status == .notFound)
            #expect(try await globex.get("/ui/dead?tenant=acme").status == .forbidden)
            #expect(try await webhooks.delivery(delivery)?.status == "dead")
            let back = try await acme.post("/ui/webhooks/\(delivery)/replay", form: ["csrf": try #require(jobPage.csrf), "back": "job"])
            #expect(back.location == "/ui/jobs/\(id)?done=replayed")
        }
    }

    @Test func jobPageFollowsItsTimelineOverServerSentEvents() async throws {
        try await withAPI { api in
            let id = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            var acme = DashboardBrowser(api)
            _ = try await acme.logIn(api.acme)
            // A live job's page follows its events; a finished one's does not.
            #expect(try await acme.get("/ui/jobs/\(id)").html.contains("data-events=\"/ui/jobs/\(id)/events\" data-count=\"1\""))
            _ = try await api.request(.post, "/v1/jobs/\(id)/cancel", key: api.acme)
            #expect(!(try await acme.get("/ui/jobs/\(id)").html.contains("data-events")))
            // The stream of a finished job: its whole timeline, then its end.
            let stream = try await acme.get("/ui/jobs/\(id)/events")
            #expect(stream.status == .ok)
            #expect(stream.headers[.contentType] == "text/event-stream")
            #expect(stream.html.contains("event: status\ndata: "))
            #expect(stream.html.contains("\"status\":\"queued\""))
            #expect(stream.html.contains("event: end\ndata: {\"job\":\"\(id)\",\"status\":\"cancelled\"}"))
            var globex = DashboardBrowser(api)
            _ = try await globex.logIn(api.globex)
            #expect(try await globex.get("/ui/jobs/\(id)/events").status == .notFound)
            var anonymous = DashboardBrowser(api)
            #expect(try await anonymous.get("/ui/jobs/\(id)/events").status == .seeOther)
        }
    }

    @Test func foreignTextOnAJobsPageIsEscaped() async throws {
        try await withAPI { api in
            let payload = #"\"'><img src=x onerror=alert(1)><script>alert(1)</script>"#
            let job = #"{"lane": "demo", "request": {"model": "demo", "messages": [{"role": "user", "content": "\#(payload)"}]}}"#
            let id = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: job).body["id"] as? String)
            // Its answer, as a provider might send it, carries the same.
            let leased = try #require(try await api.queue.lease(lane: "demo", count: 1).first)
            _ = try await api.queue.complete(leased.id, token: leased.token, result: Array(#"{"answer": "\#(payload)"}"#.utf8))
            var browser = DashboardBrowser(api)
            _ = try await browser.logIn(api.acme)
            let page = try await browser.get("/ui/jobs/\(id)")
            #expect(page.status == .ok)
            #expect(!page.html.contains("<script>alert"))
            #expect(!page.html.contains("<img src=x"))
            #expect(page.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(page.html.contains("&lt;img src=x onerror=alert(1)&gt;"))
        }
    }

    @Test func hostileQueryStringsAre400sAndTheProcessKeepsServing() async throws {
        try await withAPI { api in
            var browser = DashboardBrowser(api)
            _ = try await browser.logIn(api.admin)
            for uri in [
                "/ui/jobs?before=1e400", "/ui/jobs?before=-5", "/ui/jobs?before=nan", "/ui/jobs?before=%F0%9F%92%A5",
                "/ui/jobs?before=" + String(repeating: "9", count: 5_000), "/ui/jobs?cursor=zz", "/ui/jobs?state=nope",
                "/ui/usage?from=nan", "/ui/usage?to=1e999", "/ui/usage?from=100&to=50", "/ui/usage?group_by=x",
                "/ui/usage.csv?from=-1e308", "/ui/usage?to=inf",
            ] {
                #expect(try await browser.get(uri).status == .badRequest, "\(uri)")
            }
            let id = try #require(try await api.request(.post, "/v1/jobs", key: api.acme, json: simpleJob).body["id"] as? String)
            for lastID in ["-1", "99999999999999999999999", "1.5", String(repeating: "7", count: 10_000)] {
                let status = try await api.client.execute(
                    uri: "/ui/jobs/\(id)/events", method: .get,
                    headers: [.cookie: "sluice_session=\(try #require(browser.cookies["sluice_session"]))", HTTPField.Name("Last-Event-ID")!: lastID]
                ).status
                #expect(status == .badRequest, "\(lastID)")
            }
            #expect(try await browser.get("/ui/jobs").status == .ok)
        }
    }

    @Test func failedLoginsFromOneAddressAreLimitedAMinute() async throws {
        try await withAPI { api in
            var browser = DashboardBrowser(api)
            let wrong = "sluice_deadbeef_" + String(repeating: "x", count: 43)
            for _ in 0..<DashboardSessions.defaultFailedLoginsPerMinute {
                #expect(try await browser.logIn(wrong).status == .unauthorized)
            }
            // Past the limit even the right key is refused, with no session, until the minute ends.
            let blocked = try await browser.logIn(api.admin)
            #expect(blocked.status == .tooManyRequests)
            #expect(blocked.html.contains("Too many failed logins"))
            #expect(browser.cookies["sluice_session"] == nil)
            // A client's X-Forwarded-For is not believed (no proxy is trusted): still refused.
            let form = try await browser.get("/ui/login")
            let token = try #require(form.csrf)
            let spoofed = try await api.client.execute(
                uri: "/ui/login", method: .post,
                headers: [
                    .contentType: "application/x-www-form-urlencoded", HTTPField.Name("X-Forwarded-For")!: "203.0.113.9",
                    .cookie: "sluice_login=\(try #require(browser.cookies["sluice_login"]))",
                ],
                body: ByteBuffer(string: "csrf=\(token)&key=\(api.admin)"))
            #expect(spoofed.status == .tooManyRequests)
            // The count is kept per address in Redis with a minute's TTL.
            let counters = try await api.queue.redis.send("KEYS", "sluice:ui:login-failures:*").array ?? []
            #expect(counters.count == 1)
            let ttl = try await api.queue.redis.send("PTTL", try #require(counters.first?.string)).int ?? -1
            #expect(ttl > 0 && ttl <= 60_000)
        }
    }

    @Test func logoutAndRevocationEndTheSession() async throws {
        try await withAPI { api in
            var browser = DashboardBrowser(api)
            _ = try await browser.logIn(api.acme)
            let page = try await browser.get("/ui/jobs")
            let out = try await browser.post("/ui/logout", form: ["csrf": try #require(page.csrf)])
            #expect(out.status == .seeOther)
            #expect(out.location == "/ui/login")
            #expect(browser.cookies["sluice_session"] == nil)

            // A stolen cookie is worthless after logout: the session is gone from Redis.
            let session = try #require(try await { () async throws -> String? in
                var again = DashboardBrowser(api)
                _ = try await again.logIn(api.acme)
                return again.cookies["sluice_session"]
            }())
            var thief = DashboardBrowser(api)
            thief.cookies["sluice_session"] = session
            #expect(try await thief.get("/ui/jobs").status == .ok)
            // Revoking the key ends its sessions at the next request.
            let prefix = String(api.acme.split(separator: "_").prefix(2).joined(separator: "_"))
            #expect(try await api.request(.delete, "/v1/keys/\(prefix)", key: api.admin).status == .ok)
            let revoked = try await thief.get("/ui/jobs")
            #expect(revoked.status == .seeOther)
            #expect(revoked.location == "/ui/login")
            // A cookie of the wrong shape is not looked up.
            thief.cookies["sluice_session"] = "x"
            #expect(try await thief.get("/ui/jobs").status == .seeOther)
        }
    }
}

extension Fixture {
    /// How many keys the store holds (revoked ones too), as `GET /v1/keys` lists them.
    func keyCount() async throws -> Int { (try await request(.get, "/v1/keys", key: admin).body["data"] as? [Any])?.count ?? -1 }
}

enum DashboardTestsSupport {
    /// A token of the right shape that is no session's.
    static let otherToken = String(repeating: "A", count: 43)
}
