import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceCore
@testable import SluiceHTTP
import SluiceQueue
import SluiceRedis
import SluiceScaler
import Testing

/// The Scaling page's chart and decisions, from the supervisors' stream in a real Redis (written
/// with the supervisor's own `ScalingEvents.append`), and who sees the lanes and reasons there and
/// in `GET /v1/scaling`.
@Suite(.timeLimit(.minutes(2))) struct DashboardScalingTests {
    /// Three entries of pool `default` as a supervisor writes them: before the hour (1 worker),
    /// a decision to 3 ten minutes ago, a crashed worker (2 running) five minutes ago.
    static func record(_ redis: RedisClient) async throws {
        let now = UnixMillis.current().value
        for (ago, kind, from, desired, workers, reason) in [
            (7_200_000, ScalingEvents.Event.Kind.decision, 0, 1, 1, "mock/a: idle; the minimum 1"),
            (600_000, .decision, 1, 3, 3, "mock/a: backlog 4,321, drain in 60 s at 1 s a call needs 3 workers"),
            (300_000, .workers, 3, 3, 2, "mock/a: backlog 4,321, drain in 60 s at 1 s a call needs 3 workers"),
        ] {
            // The entry's id is its time: an explicit one places it in the past.
            let command = ScalingEvents.append(
                pool: "default", kind: kind, from: from, desired: desired, workers: workers, reason: reason, id: "\(now - Int64(ago))-0")
            _ = try await redis.send(command)
        }
    }

    @Test func theScalingPageChartsDesiredAndRunningWorkersAndListsTheDecisions() async throws {
        try await withAPI { api in
            try await Self.record(api.queue.redis)
            var admin = DashboardBrowser(api)
            _ = try await admin.logIn(api.admin)
            let page = try await admin.get("/ui/scaling")
            #expect(page.status == .ok)
            #expect(page.html.contains("data-live=\"/ui/scaling/pools\""))
            let desired = try #require(page.html.firstMatch(of: /data-series="desired"[^>]*points="([^"]+)"/)).1
            let running = try #require(page.html.firstMatch(of: /data-series="running"[^>]*points="([^"]+)"/)).1
            // Desired: 1 from the hour's start, 3 from ten minutes ago; running also drops to 2.
            // The top of the y axis is 3: a value of 3 is drawn at the plot's top (y 10), 1 lower.
            #expect(desired.hasPrefix("40.0,83.3 "), "\(desired)")
            #expect(desired.hasSuffix(" 630.0,10.0"), "\(desired)")
            #expect(running.hasSuffix(" 630.0,46.7"), "\(running)")
            #expect(running.split(separator: " ").count == 6, "\(running)")
            #expect(page.html.contains("<text x=\"34\" y=\"14\" text-anchor=\"end\" font-size=\"11\">3</text>"))
            // The decisions table: the one decision in the hour (a workers-only entry is not one), its reason.
            #expect(page.html.contains("<td class=\"num\">1 → 3</td><td class=\"num\">3</td><td class=\"reason\">mock/a: backlog 4,321"))
            #expect(!page.html.contains("idle; the minimum 1"))
            #expect(!page.html.contains("style="))

            // The part the page's script fetches again: the same pools, without the page around them.
            let pools = try await admin.get("/ui/scaling/pools")
            #expect(pools.status == .ok)
            #expect(pools.html.contains("data-pool=\"default\""))
            #expect(pools.html.contains("data-series=\"desired\""))
            #expect(!pools.html.contains("<html"))
            var anonymous = DashboardBrowser(api)
            #expect(try await anonymous.get("/ui/scaling/pools").status == .seeOther)
        }
    }

    @Test func aPoolWithNoRecordedHistorySaysSo() async throws {
        try await withAPI { api in
            var admin = DashboardBrowser(api)
            _ = try await admin.logIn(api.admin)
            let page = try await admin.get("/ui/scaling")
            #expect(page.status == .ok)
            #expect(page.html.contains("class=\"empty no-history\""))
            #expect(!page.html.contains("data-series=\"desired\""))
        }
    }

    /// Lanes are every tenant's: a read key that is not an admin's sees the pools' figures and the
    /// chart, but no lane's signals and no reason (which quotes them), on the page and in the API.
    @Test func lanesAndReasonsAreAnAdminsOnTheScalingPageAndInTheAPI() async throws {
        try await withAPI { api in
            try await Self.record(api.queue.redis)
            for _ in 0..<5 { _ = try await api.request(.post, "/v1/jobs", key: api.acme, json: #"{"provider": "mock", "model": "a", "request": {"x": 1}}"#) }
            try await api.scaling.tick()

            let asAdmin = try await api.request(.get, "/v1/scaling/default", key: api.admin)
            #expect(asAdmin.status == .ok)
            #expect((asAdmin.body["reason"] as? String)?.contains("mock/a") == true)
            #expect((asAdmin.body["lanes"] as? [[String: Any]])?.first?["ready"] as? Int == 5)
            let asReader = try await api.request(.get, "/v1/scaling/default", key: api.acmeReader)
            #expect(asReader.status == .ok)
            #expect(asReader.body["desired"] as? Int == asAdmin.body["desired"] as? Int)
            #expect(asReader.body["reason"] is NSNull)
            #expect((asReader.body["lanes"] as? [Any])?.isEmpty == true)
            let list = try await api.request(.get, "/v1/scaling", key: api.globex)
            #expect(((list.body["data"] as? [[String: Any]])?.first?["lanes"] as? [Any])?.isEmpty == true)

            var reader = DashboardBrowser(api)
            _ = try await reader.logIn(api.acmeReader)
            let page = try await reader.get("/ui/scaling")
            #expect(page.status == .ok)
            #expect(page.html.contains("data-series=\"running\""))
            #expect(page.html.contains("<td class=\"num\">1 → 3</td>"))
            #expect(!page.html.contains("backlog"))
            #expect(!page.html.contains("mock/a"))
            var admin = DashboardBrowser(api)
            _ = try await admin.logIn(api.admin)
            let full = try await admin.get("/ui/scaling")
            #expect(full.html.contains("<tr><td>mock/a</td><td class=\"num\">5</td>"))
        }
    }

    /// A busy hour: 2,500 changes in the stream, of which the page reads the newest 2,000 (one
    /// XREVRANGE), so the chart starts at the oldest of those; the time each page took is printed.
    @Test func aBusyHourIsReadUpToTheNewest2000Entries() async throws {
        try await withAPI { api in
            let now = UnixMillis.current().value
            let commands = (0..<2_500).map { index in
                ScalingEvents.append(
                    pool: "default", kind: .decision, from: index % 4, desired: index % 4 + 1, workers: index % 4 + 1,
                    reason: "change \(index)", id: "\(now - 3_000_000 + Int64(index) * 1_000)-0")
            }
            _ = try await api.queue.redis.pipeline(commands)
            var admin = DashboardBrowser(api)
            _ = try await admin.logIn(api.admin)
            let clock = ContinuousClock()
            var page = try await admin.get("/ui/scaling/pools")
            let started = clock.now
            for _ in 0..<20 { page = try await admin.get("/ui/scaling/pools") }
            print("scaling pools with 2,000 entries read: \((clock.now - started) / 20) a page")
            #expect(page.status == .ok)
            // The newest 20 decisions are listed, the newest first; the oldest 500 were not read.
            #expect(page.html.contains("change 2499"))
            #expect(page.html.contains("change 2480"))
            #expect(!page.html.contains("change 2479"))
            let desired = try #require(page.html.firstMatch(of: /data-series="desired"[^>]*points="([^"]+)"/)).1
            #expect(desired.split(separator: " ").count == 2 * 2_000, "a point where each of the 2,000 starts and ends, and the right edge")
        }
    }

    @Test func stepLinesHoldEachValueUntilTheNext() {
        let points = DashboardScalingChart.steps([(0, 2), (500, 4)], span: 1000, peak: 4)
        #expect(points == "40.0,65.0 335.0,65.0 335.0,10.0 630.0,10.0")
        #expect(DashboardScalingChart.steps([], span: 1000, peak: 1).isEmpty)
    }
}
