import SluiceCore
import SluiceQueue
import Testing

@Suite struct FairShareTests {
    @Test func smallTenantStartsWithinTheFirstLeasesDespiteAHugeBacklog() async throws {
        try await withQueue { queue, _ in
            _ = try await queue.enqueue((0..<100_000).map { _ in spec(tenant: "A") })
            let small = Set(try await queue.enqueue((0..<10).map { _ in spec(tenant: "B") }).map(\.id))
            // One lease at a time, as a worker pool would.
            var firstTwenty: [LeasedJob] = []
            for _ in 0..<20 { firstTwenty += try await queue.lease(lane: "lane-a", count: 1) }
            let startedB = firstTwenty.filter { small.contains($0.id) }
            #expect(startedB.count == 10, "B got \(startedB.count) of the first 20 leases")
            #expect(firstTwenty.count == 20)
        }
    }

    @Test func tenantsShareEachLeaseCallEqually() async throws {
        try await withQueue { queue, _ in
            _ = try await queue.enqueue((0..<50).map { _ in spec(tenant: "A") })
            _ = try await queue.enqueue((0..<50).map { _ in spec(tenant: "B") })
            _ = try await queue.enqueue((0..<50).map { _ in spec(tenant: "C") })
            for _ in 0..<3 {
                let tenants = try await queue.lease(lane: "lane-a", count: 30).map(\.tenant)
                for tenant in ["A", "B", "C"] { #expect(tenants.filter { $0 == tenant }.count == 10) }
            }
            // One job at a time, the tenants take turns.
            var turns: [String] = []
            for _ in 0..<6 { turns += try await queue.lease(lane: "lane-a", count: 1).map(\.tenant) }
            for start in stride(from: 0, to: 6, by: 3) { #expect(Set(turns[start..<start + 3]).count == 3) }
        }
    }

    @Test func unevenShareGoesToTheLeastRecentlyServed() async throws {
        try await withQueue { queue, _ in
            for tenant in ["A", "B", "C"] { _ = try await queue.enqueue((0..<20).map { _ in spec(tenant: tenant) }) }
            // 4 jobs over 3 tenants: one each, then the round continues with whoever is next.
            let first = try await queue.lease(lane: "lane-a", count: 4).map(\.tenant)
            #expect(Set(first) == ["A", "B", "C"])
            let second = try await queue.lease(lane: "lane-a", count: 2).map(\.tenant)
            let counts = Dictionary(grouping: first + second, by: { $0 }).mapValues(\.count)
            #expect(counts.values.max()! - counts.values.min()! <= 1, "\(counts)")
        }
    }

    @Test func newcomerIsServedWithinOneRound() async throws {
        try await withQueue { queue, _ in
            _ = try await queue.enqueue((0..<100).map { _ in spec(tenant: "A") })
            _ = try await queue.lease(lane: "lane-a", count: 40)
            let newcomer = try await queue.enqueue(spec(tenant: "N")).id
            let next = try await queue.lease(lane: "lane-a", count: 2).map(\.id)
            #expect(next.contains(newcomer))
        }
    }
}
