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

        enum CodingKeys: String, CodingKey {
            case lane, ready, leased, delayed
            case oldestReadyAgeSeconds = "oldest_ready_age_seconds"
        }
    }

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.get("queues", use: list)
    }

    @Sendable func list(_ request: Request, _ context: SluiceRequestContext) async throws -> ListDocument<Lane> {
        _ = try context.require(.admin)
        let now = UnixMillis.current()
        var data: [Lane] = []
        for stats in try await queue.stats(lanes: try await queue.lanes()) {
            let lane = stats.lane
            data.append(
                Lane(
                    lane: lane, ready: stats.counts.ready, leased: stats.counts.leased, delayed: stats.counts.delayed,
                    oldestReadyAgeSeconds: stats.oldestReadyCreatedAt.map { Double(max(0, now.value - $0.value)) / 1000 }))
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
