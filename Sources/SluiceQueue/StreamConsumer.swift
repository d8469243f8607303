import Logging
import SluiceCore
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
    ///
    /// New entries of every stream come from one `XREADGROUP … BLOCK` on a connection of its
    /// own: an idle consumer costs one blocked read per `block`, and an entry is handed over as
    /// soon as it is added. A cancellation ends a blocked read at once (it adds an entry to the
    /// consumer's wake-up stream, `KeyLayout.consumerWake`, which every read names too); the
    /// block (`idle`) is bounded all the same.
    public func run(
        logger: Logger, idle block: Duration = .seconds(1), streams: @Sendable () async throws -> [String],
        _ handle: @Sendable (_ stream: String, [Entry]) async throws -> Void
    ) async {
        var prepared: Set<String> = []
        // First what was read before and not acknowledged, then new entries.
        var pendingFirst = true
        while !Task.isCancelled {
            do {
                let names = try await streams()
                for stream in names + [wake] where prepared.insert(stream).inserted {
                    do { _ = try await redis.send("XGROUP", "CREATE", stream, group, "0", "MKSTREAM") } catch {
                        guard "\(error)".contains("BUSYGROUP") else { throw error }
                    }
                }
                if pendingFirst {
                    for stream in names { _ = try await readPending(stream: stream, handle) }
                    pendingFirst = false
                }
                guard !names.isEmpty else {
                    // Nothing to block on yet: look for streams again after `block`.
                    try await Task.sleep(for: block)
                    continue
                }
                let read = try await readNew(names, block: block, handle)
                // Busy (entries came, not a full batch): let more gather before the next read,
                // so that a steady flow is read in batches, not an entry or two per round trip.
                // Idle, the blocked read still hands an entry over as soon as it is added.
                if read > 0 && read < batch { try await Task.sleep(for: Self.linger) }
            } catch is CancellationError {
                return
            } catch {
                logger.warning("reading streams failed; retrying in 1 s", metadata: ["group": "\(group)", "consumer": "\(consumer)", "error": "\(error)"])
                // A stream deleted meanwhile loses its group: create them again.
                prepared = []
                pendingFirst = true
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    /// This consumer's wake-up stream.
    var wake: String { KeyLayout.consumerWake(group: group, consumer: consumer) }

    /// One blocking read of new entries (">") of every stream in `streams`, each stream's batch
    /// handed over and acknowledged. A cancellation ends the read at once (through the wake-up
    /// stream); what it read then is left pending, read again first next time.
    /// How long a busy consumer lets entries gather between reads.
    static let linger: Duration = .milliseconds(10)

    /// Returns how many entries it handed over.
    @discardableResult
    private func readNew(_ streams: [String], block: Duration, _ handle: @Sendable (String, [Entry]) async throws -> Void) async throws -> Int {
        let names = streams + [wake]
        let arguments: [any RedisArgument] =
            ["GROUP", group, consumer, "COUNT", batch, "BLOCK", max(1, block.milliseconds), "STREAMS"]
            + names.map { $0 as any RedisArgument } + names.map { _ in ">" as any RedisArgument }
        let redis = self.redis
        let wake = self.wake
        let reply = try await withWakeUp(wake: { _ = try? await redis.send("XADD", wake, "MAXLEN", 1, "*", "wake", "1") }) {
            try await redis.blocking(RedisCommand("XREADGROUP", arguments), timeout: block)
        }
        var read: [(stream: String, entries: [RedisValue])] = []
        for streamReply in reply.array ?? [] {
            guard let parts = streamReply.array, parts.count == 2, let stream = parts[0].string, let rawEntries = parts[1].array else {
                continue
            }
            if stream == wake {
                // Wake-ups are acknowledged at once (so none stays pending), never handed over.
                let ids = rawEntries.compactMap { $0.array?.first?.string }
                if !ids.isEmpty { _ = try await redis.send(RedisCommand("XACK", [wake, self.group] + ids.map { $0 as any RedisArgument })) }
            } else {
                read.append((stream, rawEntries))
            }
        }
        try Task.checkCancellation()
        for (stream, rawEntries) in read { _ = try await deliver(stream: stream, rawEntries, handle) }
        return read.reduce(0) { $0 + $1.entries.count }
    }

    /// Hands over and acknowledges every entry of one stream read before and not acknowledged.
    /// Returns the entries read.
    private func readPending(stream: String, _ handle: @Sendable (String, [Entry]) async throws -> Void) async throws -> Int {
        var total = 0
        while true {
            let reply = try await redis.send("XREADGROUP", "GROUP", group, consumer, "COUNT", batch, "STREAMS", stream, "0")
            guard let raw = reply.array?.first?.array, raw.count == 2, let rawEntries = raw[1].array, !rawEntries.isEmpty else {
                return total
            }
            total += try await deliver(stream: stream, rawEntries, handle)
            if rawEntries.count < batch { return total }
        }
    }

    /// Hands raw entries of one stream to `handle`, then acknowledges them. Returns how many.
    private func deliver(stream: String, _ rawEntries: [RedisValue], _ handle: @Sendable (String, [Entry]) async throws -> Void) async throws -> Int {
        guard !rawEntries.isEmpty else { return 0 }
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
        if !ids.isEmpty { _ = try await redis.send(RedisCommand("XACK", [stream, group] + ids.map { $0 as any RedisArgument })) }
        return ids.count
    }
}
