import Logging
import SluiceCore
import SluiceRedis

/// The jobs that reach a terminal state, read from every lane's event stream through a Redis
/// consumer group, for a service that must see each of them (the archiver, the webhooks).
///
/// An entry is acknowledged only once `handle` has returned for it, so a consumer that stops
/// (or crashes, or whose handler throws) reads the unacknowledged entries again first, then
/// the new ones: nothing is skipped, and a handler must accept a job seen twice. Maintenance
/// never trims an entry a group has not acknowledged (trim-events.lua).
public struct FinishedJobFeed: Sendable {
    public struct Finished: Sendable, Hashable {
        public var id: JobID
        public var state: JobState
    }

    public let queue: JobQueue
    /// The consumer group: one per service; every process of that service shares it.
    public let group: String
    public let consumer: String
    /// The most entries read at once.
    public let batch: Int

    public init(queue: JobQueue, group: String, consumer: String = "main", batch: Int = 500) {
        self.queue = queue
        self.group = group
        self.consumer = consumer
        self.batch = batch
    }

    /// Reads until cancelled, handing each batch of finished jobs to `handle` (possibly empty
    /// batches are not handed over).
    public func run(logger: Logger, _ handle: @Sendable ([Finished]) async throws -> Void) async {
        var prepared: Set<String> = []
        // First what was read before and not acknowledged, then new entries.
        var pendingFirst = true
        while !Task.isCancelled {
            do {
                var handled = 0
                let streams = Set(try await queue.lanes().map { KeyLayout.events(lane: $0) })
                for stream in streams.sorted() {
                    if prepared.insert(stream).inserted {
                        do { _ = try await queue.redis.send("XGROUP", "CREATE", stream, group, "0", "MKSTREAM") } catch {
                            guard "\(error)".contains("BUSYGROUP") else { throw error }
                        }
                    }
                    handled += try await read(stream: stream, from: pendingFirst ? "0" : ">", handle)
                }
                pendingFirst = false
                if handled == 0 { try await Task.sleep(for: .milliseconds(100)) }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("\(group): reading events failed: \(error); retrying in 1 s")
                pendingFirst = true
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Reads, hands over and acknowledges one batch of a stream; returns the entries read.
    private func read(stream: String, from start: String, _ handle: @Sendable ([Finished]) async throws -> Void) async throws -> Int {
        var total = 0
        while true {
            let reply = try await queue.redis.send(
                "XREADGROUP", "GROUP", group, consumer, "COUNT", batch, "STREAMS", stream, start)
            guard let streams = reply.array, let first = streams.first?.array, first.count == 2, let entries = first[1].array,
                !entries.isEmpty
            else { return total }
            var read: [String] = []
            var finished: [Finished] = []
            for entry in entries {
                guard let parts = entry.array, parts.count == 2, let entryID = parts[0].string else { continue }
                let fields = parts[1].array ?? []
                var to: JobState?
                var jobs: String?
                for index in stride(from: 0, to: fields.count - 1, by: 2) {
                    switch fields[index].string {
                    case "to": to = fields[index + 1].string.flatMap(JobState.init(rawValue:))
                    case "jobs": jobs = fields[index + 1].string
                    default: break
                    }
                }
                if let to, to.isTerminal, let jobs {
                    finished += jobs.split(separator: ",").compactMap { JobID(String($0)) }.map { Finished(id: $0, state: to) }
                }
                read.append(entryID)
            }
            if !finished.isEmpty { try await handle(finished) }
            _ = try await queue.redis.send(RedisCommand("XACK", [stream, group] + read.map { $0 as any RedisArgument }))
            total += read.count
            // Reading pending entries ("0") goes on until none are left; new ones one batch a call.
            if start != "0" { return total }
            if entries.count < batch { return total }
        }
    }
}
