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

/// The configuration's `dashboard:` in a served API: off (404, the API unchanged), and its
/// login limit and refresh in force.
@Suite(.timeLimit(.minutes(2))) struct DashboardSettingsTests {
    func withConfiguredAPI(_ yaml: String, _ body: @escaping @Sendable (any TestClientProtocol, String) async throws -> Void) async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-dashboard-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/sluice.sqlite"))
            let admin = try keys.create(tenant: "ops", scopes: [.admin]).secret
            let queue = JobQueue(redis: redis)
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            let settings = SluiceAPI.Settings(try SluiceConfiguration.load(yaml: yaml))
            let api = SluiceAPI.testing(queue: queue, waiter: waiter, keys: keys, settings: settings)
            let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await app.test(.live) { client in try await body(client, admin) }
        }
    }

    @Test func disabledDashboardAnswers404AndTheAPIStillServes() async throws {
        try await withConfiguredAPI("dashboard: { enabled: false }\n") { client, admin in
            for path in ["/ui", "/ui/login", "/ui/overview", "/ui/static/dashboard.js", "/ui/scaling/pools"] {
                #expect(try await client.execute(uri: path, method: .get, headers: [:], body: nil).status == .notFound, "\(path)")
            }
            let login = try await client.execute(
                uri: "/ui/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(string: "key=x"))
            #expect(login.status == .notFound)
            let keys = try await client.execute(uri: "/v1/keys", method: .get, headers: [.authorization: "Bearer \(admin)"], body: nil)
            #expect(keys.status == .ok)
        }
    }

    @Test func theLoginLimitAndTheRefreshComeFromTheConfiguration() async throws {
        try await withConfiguredAPI("dashboard: { login_attempts_per_minute: 2, refresh: 5s, session_ttl: 10m }\n") { client, admin in
            var browser = DashboardBrowser(client: client)
            for _ in 0..<2 {
                let refused = try await browser.logIn("sluice_deadbeef_" + String(repeating: "x", count: 43))
                #expect(refused.status == .unauthorized)
            }
            // The third, a right key's too, waits for the minute's end.
            let third = try await browser.logIn(admin)
            #expect(third.status == .tooManyRequests)
            #expect(browser.cookies["sluice_session"] == nil)
        }
        try await withConfiguredAPI("dashboard: { refresh: 5s, session_ttl: 10m }\n") { client, admin in
            var browser = DashboardBrowser(client: client)
            let login = try await browser.logIn(admin)
            let cookie = try #require(login.headers[values: .setCookie].first { $0.hasPrefix("sluice_session=") })
            #expect(cookie.contains("Max-Age=600"))
            let overview = try await browser.get("/ui/overview")
            #expect(overview.html.contains("data-refresh=\"5000\""))
            #expect(overview.html.contains("updated every 5 s"))
            #expect(try await browser.get("/ui/scaling").html.contains("data-refresh=\"5000\""))
        }
    }
}
