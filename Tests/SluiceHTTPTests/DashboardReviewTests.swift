import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SluiceCore
@testable import SluiceHTTP
import SluiceQueue
import Testing

/// The dashboard's review findings (issue 16): links that carry a lane name.
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
}
