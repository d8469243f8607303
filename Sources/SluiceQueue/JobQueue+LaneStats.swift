extension JobQueue {
    /// The stats of every lane in `lanes`, in that order. The calls go out together (the
    /// connection pipelines concurrent commands), so a listing of many lanes costs about one
    /// round trip, not one per lane; each lane's figures are read atomically, as `stats(lane:)`.
    public func stats(lanes: [String]) async throws -> [LaneStats] {
        try await withThrowingTaskGroup(of: (Int, LaneStats).self) { group in
            for (index, lane) in lanes.enumerated() {
                group.addTask { (index, try await self.stats(lane: lane)) }
            }
            var out = [LaneStats?](repeating: nil, count: lanes.count)
            for try await (index, stats) in group { out[index] = stats }
            return out.compactMap { $0 }
        }
    }
}
