import SluiceCore
import SluiceQueue
import Testing

@Suite struct ManyLaneStatsTests {
    @Test func statsOfManyLanesComeInTheOrderAskedWithEachLanesCounts() async throws {
        try await withQueue { queue, _ in
            _ = try await queue.enqueue([spec("lane-a"), spec("lane-a"), spec("lane-b")])
            _ = try await queue.lease(lane: "lane-a", count: 1)
            let lanes = ["lane-b", "lane-a", "lane-none"]
            let stats = try await queue.stats(lanes: lanes)
            #expect(stats.map(\.lane) == lanes)
            #expect(stats.map(\.counts) == [
                LaneCounts(ready: 1, leased: 0, delayed: 0), LaneCounts(ready: 1, leased: 1, delayed: 0), LaneCounts(ready: 0, leased: 0, delayed: 0),
            ])
            #expect(stats[0].oldestReadyCreatedAt != nil && stats[2].oldestReadyCreatedAt == nil)
            #expect(try await queue.stats(lanes: []).isEmpty)
        }
    }
}
