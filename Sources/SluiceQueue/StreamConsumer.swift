import Logging
import SluiceRedis

/// Reads Redis streams through a consumer group, handing each batch of entries to a handler
/// and acknowledging them only once it has returned: a consumer that stops (or crashes, or whose
/// handler throws) reads its unacknowledged entries again first, then the new ones. Nothing is
/// skipped; a handler must accept an entry seen twice. (`trim-events.lua` never trims an entry
/// a group still needs.)
public struct StreamConsumer: Sendable {
    /// One stream entry: its id and its fields (text).
    public struct Entry: Sendable {
        public var id: String
        public var fields: [String: String]
    }

    public let redis: RedisClient
    /// The consumer group: one per service; every process of that service shares it.
    public let group: String
    public let consumer: String
    /// The most entries read at once.
    public let batch: Int

    public init(redis: RedisClient, group: String, consumer: String, batch: Int = 500) {
        self.redis = redis
        self.group = group
        self.consumer = consumer
        self.batch = batch
    }

    /// Reads the streams `streams()` names (asked again every round, so new ones join) until
    /// cancelled; `handle` gets each batch of one stream (never an empty one).
    public func run(
        logger: Logger, idle: Duration = .milliseconds(100), streams: @Sendable () async throws -> [String],
        _ handle: @Sendable (_ stream: String, [Entry]) async throws -> Void
    ) async {
        var prepared: Set<String> = []
        // First what was read before and not acknowledged, then new entries.
        var pendingFirst = true
        while !Task.isCancelled {
            do {
                var handled = 0
                for stream in try await streams() {
                    if prepared.insert(stream).inserted {
                        do { _ = try await redis.send("XGROUP", "CREATE", stream, group, "0", "MKSTREAM") } catch {
                            guard "\(error)".contains("BUSYGROUP") else { throw error }
                        }
                    }
                    handled += try await read(stream: stream, from: pendingFirst ? "0" : ">", handle)
                }
                pendingFirst = false
                if handled == 0 { try await Task.sleep(for: idle) }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("\(group): reading \(consumer)'s streams failed: \(error); retrying in 1 s")
                pendingFirst = true
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// Reads, hands over and acknowledges entries of one stream: every pending one ("0"), or one
    /// batch of new ones (">"). Returns the entries read.
    private func read(stream: String, from start: String, _ handle: @Sendable (String, [Entry]) async throws -> Void) async throws -> Int {
        var total = 0
        while true {
            let reply = try await redis.send("XREADGROUP", "GROUP", group, consumer, "COUNT", batch, "STREAMS", stream, start)
            guard let raw = reply.array?.first?.array, raw.count == 2, let rawEntries = raw[1].array, !rawEntries.isEmpty else {
                return total
            }
            var entries: [Entry] = []
            var ids: [String] = []
            for rawEntry in rawEntries {
                guard let parts = rawEntry.array, parts.count == 2, let id = parts[0].string else { continue }
                ids.append(id)
                // An entry deleted since it was read comes back without fields: nothing to hand over.
                guard let flat = parts[1].array else { continue }
                var fields: [String: String] = [:]
                for index in stride(from: 0, to: flat.count - 1, by: 2) {
                    if let name = flat[index].string { fields[name] = flat[index + 1].string ?? "" }
                }
                entries.append(Entry(id: id, fields: fields))
            }
            if !entries.isEmpty { try await handle(stream, entries) }
            _ = try await redis.send(RedisCommand("XACK", [stream, group] + ids.map { $0 as any RedisArgument }))
            total += ids.count
            if start != "0" || rawEntries.count < batch { return total }
        }
    }
}
