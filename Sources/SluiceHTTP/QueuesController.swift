import Hummingbird
import SluiceCore
import SluiceQueue

/// `GET /v1/queues` (scope admin: depths reveal every tenant's volume): per lane, the ready,
/// leased and delayed counts and the age of the oldest ready job.
struct QueuesController: Sendable {
    let queue: JobQueue

    struct Lane: Encodable {
        let lane: String
        let ready: Int
        let leased: Int
        let delayed: Int
        /// Left out when no job is ready.
        let oldestReadyAgeSeconds: Double?
        /// Jobs waiting for the lane's next provider batch, and jobs in provider batches sent.
        var collecting = 0
        var providerBatched = 0

        enum CodingKeys: String, CodingKey {
            case lane, ready, leased, delayed, collecting
            case oldestReadyAgeSeconds = "oldest_ready_age_seconds"
            case providerBatched = "provider_batched"
        }
    }

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.get("queues", use: list)
    }

    @Sendable func list(_ request: Request, _ context: SluiceRequestContext) async throws -> ListDocument<Lane> {
        _ = try context.require(.admin)
        let now = UnixMillis.current()
        var data: [Lane] = []
        let lanes = try await queue.lanes()
        let batched = try await ProviderBatches(queue: queue).depths(lanes: lanes)
        for (stats, depth) in zip(try await queue.stats(lanes: lanes), batched) {
            let lane = stats.lane
            var entry = Lane(
                lane: lane, ready: stats.counts.ready, leased: stats.counts.leased, delayed: stats.counts.delayed,
                oldestReadyAgeSeconds: stats.oldestReadyCreatedAt.map { Double(max(0, now.value - $0.value)) / 1000 })
            entry.collecting = depth.collecting
            entry.providerBatched = depth.batched
            data.append(entry)
        }
        return ListDocument(data: data)
    }
}

/// `{"object": "list", "data": [...]}`.
struct ListDocument<Element: Encodable & Sendable>: ResponseEncodable, Sendable {
    var object = "list"
    let data: [Element]

    init(data: [Element]) { self.data = data }
}
