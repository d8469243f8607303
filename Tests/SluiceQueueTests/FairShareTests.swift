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

    @Test func tenantsAlternateWithinOneLeaseCall() async throws {
        try await withQueue { queue, _ in
            _ = try await queue.enqueue((0..<50).map { _ in spec(tenant: "A") })
            _ = try await queue.enqueue((0..<50).map { _ in spec(tenant: "B") })
            _ = try await queue.enqueue((0..<50).map { _ in spec(tenant: "C") })
            let tenants = try await queue.lease(lane: "lane-a", count: 30).map(\.tenant)
            for tenant in ["A", "B", "C"] { #expect(tenants.filter { $0 == tenant }.count == 10) }
            // No tenant is served twice before the others had a turn.
            for start in stride(from: 0, to: 30, by: 3) { #expect(Set(tenants[start..<start + 3]).count == 3) }
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
