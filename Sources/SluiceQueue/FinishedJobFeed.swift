import Logging
import SluiceCore
import SluiceRedis

/// The jobs that reach a terminal state, read from every lane's event stream through a Redis
/// consumer group (`StreamConsumer`), for a service that must see each of them (the archiver,
/// the webhooks): nothing is skipped across a restart, and a handler must accept a job seen
/// twice.
public struct FinishedJobFeed: Sendable {
    public struct Finished: Sendable, Hashable {
        public var id: JobID
        public var state: JobState
    }

    public let queue: JobQueue
    let consumer: StreamConsumer

    public init(queue: JobQueue, group: String, consumer: String = "main", batch: Int = 500) {
        self.queue = queue
        self.consumer = StreamConsumer(redis: queue.redis, group: group, consumer: consumer, batch: batch)
    }

    /// Reads until cancelled, handing each batch of finished jobs to `handle` (batches with none
    /// are not handed over).
    public func run(logger: Logger, _ handle: @Sendable ([Finished]) async throws -> Void) async {
        let queue = self.queue
        await consumer.run(logger: logger, streams: { Set(try await queue.lanes().map { KeyLayout.events(lane: $0) }).sorted() }) { _, entries in
            var finished: [Finished] = []
            for entry in entries {
                guard let to = entry.fields["to"].flatMap(JobState.init(rawValue:)), to.isTerminal, let jobs = entry.fields["jobs"] else {
                    continue
                }
                finished += jobs.split(separator: ",").compactMap { JobID(String($0)) }.map { Finished(id: $0, state: to) }
            }
            if !finished.isEmpty { try await handle(finished) }
        }
    }
}
