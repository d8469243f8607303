import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SluiceCore
import SluiceQueue
import SluiceRedis
import Synchronization

/// Where an entry sits in the lanes' event streams, and the order in which the hub hands
/// entries over: by Redis time (ms), then lane tag, then the entry's sequence number. Written as
/// an SSE event id `<tag>-<ms>-<seq>` (the stream entry id behind the lane tag), so that a
/// client's `Last-Event-ID` says exactly what it has seen.
public struct EventPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var ms: UInt64
    public var tag: String
    public var seq: UInt64

    public init(ms: UInt64, tag: String, seq: UInt64) {
        self.ms = ms
        self.tag = tag
        self.seq = seq
    }

    /// The position of stream entry `entryID` (`<ms>-<seq>`) of the stream of lane tag `tag`.
    init?(tag: String, entryID: Substring) {
        let parts = entryID.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let ms = UInt64(parts[0]), let seq = UInt64(parts[1]) else { return nil }
        self.init(ms: ms, tag: tag, seq: seq)
    }

    /// Parses an SSE event id (`<tag>-<ms>-<seq>`, the tag 8 lowercase hex digits); nil for
    /// anything else, of any length.
    public init?(eventID: String) {
        guard eventID.utf8.count <= 64 else { return nil }
        let parts = eventID.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].utf8.count == 8,
            parts[0].utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }),
            let ms = UInt64(parts[1]), let seq = UInt64(parts[2])
        else { return nil }
        self.init(ms: ms, tag: String(parts[0]), seq: seq)
    }

    public var description: String { "\(tag)-\(ms)-\(seq)" }
    /// The stream entry id.
    var entryID: String { "\(ms)-\(seq)" }

    public static func < (lhs: EventPosition, rhs: EventPosition) -> Bool {
        (lhs.ms, lhs.tag, lhs.seq) < (rhs.ms, rhs.tag, rhs.seq)
    }
}

/// One entry of a lane's event stream: one transition of one or more jobs, as a job script
/// wrote it (`includes/transition.lua`).
public struct LaneEvent: Sendable {
    public var position: EventPosition
    /// The jobs that made this transition (an entry of a lease or a bulk names many).
    public var jobs: [String]
    public var lane: String
    /// Empty when the jobs were just created.
    public var from: String
    public var to: String
    /// When the script ran (Redis time, ms).
    public var at: Int64
    public var info: String?
    /// The tenant of each job (same order), when some subscriber filters by tenant; nil for a
    /// job whose record is gone.
    public var tenants: [String?]?
    /// The tenant of every job, when `tenants` is known and names one tenant only (the usual
    /// case: one entry is one script call, and most calls are one tenant's): a tenant filter
    /// then takes or leaves the event whole without looking at each job.
    public var soleTenant: String?

    /// An entry from its stream fields; nil when it lacks any of them.
    init?(position: EventPosition, fields: [String: String]) {
        self.init(position: position, field: { fields[$0] })
    }

    /// An entry from its fields as `XREAD`/`XRANGE` return them (name, value, name, value…),
    /// read in place: no dictionary of them is built (the reader parses every entry of every
    /// lane while anyone subscribes).
    init?(position: EventPosition, flat: [RedisValue]) {
        self.init(position: position) { name in
            var index = 0
            while index + 1 < flat.count {
                switch flat[index] {
                case .bulkString(let bytes) where bytes.elementsEqual(name.utf8): return flat[index + 1].string ?? ""
                case .simpleString(let text) where text == name: return flat[index + 1].string ?? ""
                default: index += 2
                }
            }
            return nil
        }
    }

    private init?(position: EventPosition, field: (String) -> String?) {
        guard let jobs = field("jobs"), let lane = field("lane"), let to = field("to") else { return nil }
        self.position = position
        self.jobs = jobs.split(separator: ",").map(String.init)
        self.lane = lane
        self.from = field("from") ?? ""
        self.to = to
        self.at = field("t").flatMap { Int64($0) } ?? Int64(clamping: position.ms)
        self.info = field("info")
    }
}

/// What a subscriber wants to see. Empty sets are not allowed (nil means any).
public struct EventFilter: Sendable, Hashable {
    /// One job only (its SSE stream).
    public var job: String?
    public var lanes: Set<String>?
    /// States entered (`to`).
    public var states: Set<String>?
    /// One tenant's jobs only; nil: every tenant's (an admin's stream).
    public var tenant: String?

    public init(job: String? = nil, lanes: Set<String>? = nil, states: Set<String>? = nil, tenant: String? = nil) {
        self.job = job
        self.lanes = lanes
        self.states = states
        self.tenant = tenant
    }

    /// The event with only the jobs this filter lets through; nil when none is left.
    func apply(_ event: LaneEvent) -> LaneEvent? {
        if let lanes, !lanes.contains(event.lane) { return nil }
        if let states, !states.contains(event.to) { return nil }
        if job == nil && tenant == nil { return event }
        if job == nil, let tenant, let sole = event.soleTenant { return sole == tenant ? event : nil }
        var kept: [String] = []
        for (index, id) in event.jobs.enumerated() {
            if let job, id != job { continue }
            if let tenant {
                // An unknown tenant (the record is gone, or was not looked up) is never shown.
                guard let tenants = event.tenants, index < tenants.count, tenants[index] == tenant else { continue }
            }
            kept.append(id)
        }
        guard !kept.isEmpty else { return nil }
        if kept.count == event.jobs.count { return event }
        var filtered = event
        filtered.jobs = kept
        filtered.tenants = nil
        filtered.soleTenant = nil
        return filtered
    }
}

/// What a subscription hands over: the events of one read that pass its filter (in order), or
/// a heartbeat (nothing happened for a while: write an SSE comment so that proxies keep the
/// connection).
public enum HubMessage: Sendable {
    /// The events, and the same events as SSE frames back to back in one buffer (what
    /// `GET /v1/events` writes, in one write): built once per read for every subscriber with
    /// the same filter, and shared by them.
    case events([LaneEvent], frames: ByteBuffer)
    case heartbeat
}

/// Why the hub refused a subscription.
public enum EventHubError: Error, Sendable {
    /// The key already has `limit` subscriptions open.
    case tooManyForKey(limit: Int)
    /// The process already serves `limit` subscriptions.
    case tooMany(limit: Int)
}

/// One subscriber's view of the hub: every entry at or after `watermark` (in `EventPosition`
/// order) that passes its filter comes through `messages`, in order, until the subscription is
/// closed (`close()`, or when the last reference to it goes) or dropped.
/// Entries before `watermark` are history (`EventHub.history`).
public final class EventSubscription: Sendable {
    public let messages: AsyncStream<HubMessage>
    /// Every entry whose time is below this (ms) was handed over before the subscription began.
    public let watermark: UInt64
    let id: UInt64
    let hub: EventHub
    let overflow: SubscriberOverflow

    init(messages: AsyncStream<HubMessage>, watermark: UInt64, id: UInt64, hub: EventHub, overflow: SubscriberOverflow) {
        self.messages = messages
        self.watermark = watermark
        self.id = id
        self.hub = hub
        self.overflow = overflow
    }

    /// Whether the hub dropped this subscriber because it did not keep up (its buffer filled):
    /// `messages` then ended after the last message it could hold.
    public var wasDropped: Bool { overflow.flag.withLock { $0 } }

    /// Leaves the hub (also done when the subscription is released).
    public func close() { hub.unsubscribe(id) }

    deinit { hub.unsubscribe(id) }
}

final class SubscriberOverflow: Sendable {
    let flag = Mutex(false)
}

/// The lanes' event streams (`sluice:{T}:events`), read by one task per process and fanned out
/// in memory to every subscriber (the SSE streams, the dashboard).
///
/// - One reader: an `XREAD BLOCK` on a connection of its own over every lane's stream, running
///   only while somebody subscribes (it starts with the first subscriber and stops with the last).
/// - Order: entries are handed over by `EventPosition` (Redis time, lane tag, sequence). An
///   entry is handed over only once every entry of an earlier millisecond has been read (the
///   reader takes Redis `TIME` before each read, and holds back what is not older than it until
///   the next read): so a position names exactly what a subscriber has seen, and a client that
///   resumes from it (`history`) misses nothing and sees nothing twice. This holds as long as the
///   Redis clock does not step back (a stream's ids never go back, but two streams' may
///   interleave differently then).
/// - Bounded: each subscriber has a buffer of `Limits.buffer` messages (one per read of the
///   streams that had something for it); one that fills it is
///   dropped (its stream ends; `EventSubscription.wasDropped`), never waited for: a slow
///   subscriber never slows the reader, the other subscribers or the queue. Subscriptions are
///   capped per API key and per process.
/// - Shutdown: run as a `Service` beside the HTTP server (after it in the group, so that it
///   stops first), a graceful shutdown ends every subscription, so that the server's wait for
///   its open answers is not a wait for clients that never leave.
/// - Tenants: a stream entry does not carry the jobs' tenant. While some subscriber filters by
///   tenant, the reader looks up each new job's tenant once (one pipelined `HGET` per unknown job
///   per read, kept in a bounded in-memory cache); a job whose record is gone is shown to no
///   tenant's stream.
public final class EventHub: Service, Sendable {
    /// The hub's bounds.
    public struct Limits: Sendable {
        /// The most subscriptions open at once in this process, and per API key.
        public var total = 1_000
        public var perKey = 16
        /// The messages (each the events of one read of the streams, or a heartbeat) a
        /// subscriber may have waiting before it is dropped.
        public var buffer = 64
        /// How long a subscription may see nothing before it gets a heartbeat.
        public var heartbeat: Duration = .seconds(15)
        /// The most entries read from one stream at once.
        public var batch = 500
        /// How long the reader lets entries gather after a read that found some (an event's
        /// delay, bought against the subscribers' wake-ups and writes under load).
        public var linger: Duration = .milliseconds(20)
        /// How long one write of an event stream to its client may take (the socket's buffers
        /// full: the client stopped reading) before its connection is closed.
        public var writeTimeout: Duration = .seconds(30)
        /// The most a resumed stream replays from the event streams (`history`): entries read
        /// (one naming n jobs counts n: each may cost a tenant lookup), and how far back (from
        /// the subscription's start). Past either, the client is told it missed events
        /// (`HistoryOutcome.capped`) and goes on live.
        public var replayEntries = 10_000
        public var replayWindow: Duration = .seconds(3600)

        public init() {}
    }

    struct Subscriber {
        var filter: EventFilter
        var key: Int64
        var continuation: AsyncStream<HubMessage>.Continuation
        var overflow: SubscriberOverflow
    }

    struct State {
        var subscribers: [UInt64: Subscriber] = [:]
        var perKey: [Int64: Int] = [:]
        var tenantFilters = 0
        var jobFilters = 0
        var nextID: UInt64 = 0
        /// The running reader, its generation (a stopped reader's late hand-over is ignored),
        /// and the watermark: every entry older than it (ms) was handed over.
        var reader: Task<Void, Never>?
        var generation = 0
        var watermark: UInt64?
        var lastHeartbeat = ContinuousClock.now
        /// Set by `shutDown()`: writes to the streams' clients get a second at most.
        var shuttingDown = false

        mutating func check(_ key: Int64, _ limits: Limits) throws {
            guard subscribers.count < limits.total else { throw EventHubError.tooMany(limit: limits.total) }
            guard perKey[key, default: 0] < limits.perKey else { throw EventHubError.tooManyForKey(limit: limits.perKey) }
        }

        /// Takes a subscriber out; true when it was the last (the reader must stop).
        mutating func remove(_ id: UInt64) -> Subscriber? {
            guard let subscriber = subscribers.removeValue(forKey: id) else { return nil }
            let left = perKey[subscriber.key, default: 1] - 1
            perKey[subscriber.key] = left > 0 ? left : nil
            if subscriber.filter.tenant != nil { tenantFilters -= 1 }
            if subscriber.filter.job != nil { jobFilters -= 1 }
            if subscribers.isEmpty {
                reader?.cancel()
                reader = nil
                watermark = nil
                generation += 1
            }
            return subscriber
        }
    }

    public let limits: Limits
    let redis: RedisClient
    let lanes: @Sendable () async throws -> [String]
    let logger: Logger
    private let state = Mutex(State())

    public init(redis: RedisClient, lanes: @escaping @Sendable () async throws -> [String], limits: Limits = Limits(), logger: Logger? = nil) {
        self.redis = redis
        self.lanes = lanes
        self.limits = limits
        self.logger = logger ?? Logger(label: "sluice.events")
    }

    /// A hub over `queue`'s lanes.
    public convenience init(queue: JobQueue, limits: Limits = Limits(), logger: Logger? = nil) {
        self.init(redis: queue.redis, lanes: { try await queue.lanes() }, limits: limits, logger: logger)
    }

    /// How many subscriptions are open.
    public var count: Int { state.withLock { $0.subscribers.count } }

    /// Opens a subscription for `filter`, counted against API key `key`; throws `EventHubError`
    /// past the limits. The first subscription starts the reader (one Redis `TIME` first).
    public func subscribe(_ filter: EventFilter, key: Int64) async throws -> EventSubscription {
        let known = try state.withLock { state in
            try state.check(key, limits)
            return state.watermark
        }
        // No reader yet: its starting point is Redis time now (read outside the lock; when two
        // first subscribers race, the first to come back starts the reader).
        let now = known == nil ? try await Self.serverTime(redis) : 0
        let (messages, continuation) = AsyncStream<HubMessage>.makeStream(bufferingPolicy: .bufferingOldest(max(1, limits.buffer)))
        let overflow = SubscriberOverflow()
        let (id, watermark) = try state.withLock { state in
            try state.check(key, limits)
            if state.watermark == nil {
                state.watermark = now
                state.generation += 1
                state.lastHeartbeat = .now
                let (generation, redis, lanes, limits, logger) = (state.generation, self.redis, self.lanes, self.limits, self.logger)
                // The reader's owner is this hub: the last subscriber's leaving cancels it.
                state.reader = Task { [weak self] in
                    guard let self else { return }
                    await Self.read(hub: self, generation: generation, start: now, redis: redis, lanes: lanes, limits: limits, logger: logger)
                }
            }
            state.nextID += 1
            state.subscribers[state.nextID] = Subscriber(filter: filter, key: key, continuation: continuation, overflow: overflow)
            state.perKey[key, default: 0] += 1
            if filter.tenant != nil { state.tenantFilters += 1 }
            if filter.job != nil { state.jobFilters += 1 }
            return (state.nextID, state.watermark ?? now)
        }
        return EventSubscription(messages: messages, watermark: watermark, id: id, hub: self, overflow: overflow)
    }

    /// Waits for a graceful shutdown (or cancellation), then ends every subscription.
    public func run() async throws {
        try? await gracefulShutdown()
        shutDown()
    }

    /// Ends every subscription (`closeAll`), and from now on gives a write to a stream's client
    /// a second at most (`DeadlineWriter`): a client that stopped reading does not hold up the
    /// server's graceful shutdown.
    public func shutDown() {
        state.withLock { $0.shuttingDown = true }
        closeAll()
    }

    /// Whether `shutDown()` was called.
    public var isShuttingDown: Bool { state.withLock { $0.shuttingDown } }

    /// Ends every subscription now (their streams end, as if the clients had left); the reader
    /// stops with the last.
    public func closeAll() {
        let all = state.withLock { state in state.subscribers.keys.compactMap { state.remove($0) } }
        for subscriber in all { subscriber.continuation.finish() }
    }

    fileprivate func unsubscribe(_ id: UInt64) {
        state.withLock { state in state.remove(id) }?.continuation.finish()
    }

    /// Whether the reader must look up the jobs' tenants.
    fileprivate var wantsTenants: Bool { state.withLock { $0.tenantFilters > 0 } }

    /// Hands `events` (in order) to every subscriber whose filter passes them, and moves the
    /// watermark. A subscriber whose buffer is full is dropped.
    fileprivate func deliver(_ events: [LaneEvent], watermark: UInt64, generation: Int) {
        let dropped: [Subscriber] = state.withLock { state in
            guard generation == state.generation else { return [] }
            var full: [UInt64] = []
            if !events.isEmpty && !state.subscribers.isEmpty {
                // One message per filter, shared by every subscriber with that filter; each
                // event written out once, for every filter that takes it whole.
                var batch = DeliveryBatch(events, indexJobs: state.jobFilters >= DeliveryBatch.indexFrom)
                var messages: [EventFilter: HubMessage?] = [:]
                for (id, subscriber) in state.subscribers {
                    let message: HubMessage?
                    if let known = messages[subscriber.filter] {
                        message = known
                    } else {
                        message = batch.message(for: subscriber.filter)
                        messages[subscriber.filter] = message
                    }
                    if let message, !Self.offer(message, to: subscriber) { full.append(id) }
                }
            }
            if ContinuousClock.now - state.lastHeartbeat >= limits.heartbeat {
                state.lastHeartbeat = .now
                for (id, subscriber) in state.subscribers where !full.contains(id) {
                    if !Self.offer(.heartbeat, to: subscriber) { full.append(id) }
                }
            }
            state.watermark = max(state.watermark ?? 0, watermark)
            return full.compactMap { state.remove($0) }
        }
        for subscriber in dropped {
            logger.notice("events subscriber dropped: its buffer is full", metadata: ["key": "\(subscriber.key)", "buffer": "\(limits.buffer)"])
            subscriber.overflow.flag.withLock { $0 = true }
            subscriber.continuation.finish()
        }
    }

    /// Yields to a subscriber; false when its buffer is full (it must be dropped).
    private static func offer(_ message: HubMessage, to subscriber: Subscriber) -> Bool {
        switch subscriber.continuation.yield(message) {
        case .enqueued: return true
        case .dropped: return false
        case .terminated: return true  // it is leaving: unsubscribe removes it
        @unknown default: return true
        }
    }

    // MARK: - The reader

    /// Redis `TIME`, in ms.
    static func serverTime(_ redis: RedisClient) async throws -> UInt64 {
        try serverTime(try await redis.send("TIME"))
    }

    /// A `TIME` reply, in ms.
    static func serverTime(_ reply: RedisValue) throws -> UInt64 {
        guard let parts = reply.array, parts.count == 2, let seconds = parts[0].string.flatMap({ UInt64($0) }),
            let micros = parts[1].string.flatMap({ UInt64($0) })
        else { throw RedisError.unexpectedReply("TIME: \(reply)") }
        // Redis time is seconds since 1970: far below an overflow.
        return seconds.multipliedReportingOverflow(by: 1000).partialValue &+ micros / 1000
    }

    /// The entries of one `XREAD` reply, by stream: each entry's id and its fields as Redis
    /// sent them (name, value, …; `LaneEvent(position:flat:)` reads them in place).
    static func entries(_ reply: RedisValue) -> [(stream: String, entries: [(id: Substring, fields: [RedisValue])])] {
        var result: [(stream: String, entries: [(id: Substring, fields: [RedisValue])])] = []
        for streamReply in reply.array ?? [] {
            guard let parts = streamReply.array, parts.count == 2, let stream = parts[0].string, let raw = parts[1].array else { continue }
            var entries: [(id: Substring, fields: [RedisValue])] = []
            entries.reserveCapacity(raw.count)
            for rawEntry in raw {
                guard let pair = rawEntry.array, pair.count == 2, let id = pair[0].string else { continue }
                entries.append((Substring(id), pair[1].array ?? []))
            }
            result.append((stream, entries))
        }
        return result
    }

    /// The stream of the lanes with tag `tag`, and the tag of a stream key.
    static func stream(tag: String) -> String { KeyLayout.prefix(LaneTag(unchecked: tag)) + "events" }

    /// The reader's loop (see the type's notes): until cancelled, read every lane's stream from
    /// its cursor, hand over in position order what is older than the Redis time taken before
    /// the read, hold back the rest for the next round.
    private static func read(
        hub: EventHub, generation: Int, start: UInt64, redis: RedisClient, lanes: @Sendable () async throws -> [String],
        limits: Limits, logger: Logger
    ) async {
        var cursors: [String: String] = [:]  // stream -> the last entry id read
        var tags: [String: String] = [:]
        var held: [LaneEvent] = []
        var handedOver = start
        var knownLanes = -1
        var tenantCache: [String: String] = [:]
        let wake = KeyLayout.consumerWake(group: "events", consumer: UUID().uuidString)
        let batch = max(1, limits.batch)
        while !Task.isCancelled {
            do {
                // Held-back entries are handed over once Redis time has passed them.
                if !held.isEmpty { try await Task.sleep(for: .milliseconds(2)) }
                // Redis time, then the number of lanes, in that order (one pipeline): a lane is
                // added to the lanes' set before its stream's first entry, so every stream with
                // an entry older than `now` is known by the time it is read.
                let clock = try await redis.pipeline([RedisCommand("TIME"), RedisCommand("SCARD", KeyLayout.lanes)])
                let now = try serverTime(clock[0])
                if let count = clock[1].int, count != knownLanes {
                    for lane in try await lanes() {
                        let tag = LaneTag(lane: lane).rawValue
                        let stream = stream(tag: tag)
                        // A stream seen for the first time is read from the watermark: it has
                        // nothing older (its lane would have been counted a round earlier).
                        if cursors[stream] == nil {
                            cursors[stream] = "\(handedOver &- 1)-\(UInt64.max)"
                            tags[stream] = tag
                        }
                    }
                    knownLanes = count
                }
                let names = cursors.keys.sorted()
                var arguments: [any RedisArgument] = ["COUNT", batch]
                if held.isEmpty { arguments += ["BLOCK", 1000] }
                arguments.append("STREAMS")
                arguments += names.map { $0 as any RedisArgument }
                // Also the wake-up stream, and the stream of new lanes: a lane's first job ends
                // a blocked read at once (the lanes' count, next round, adds its stream).
                arguments += [wake, KeyLayout.newLanes]
                arguments += names.map { cursors[$0]! as any RedisArgument }
                arguments += ["$", "$"]
                let command = RedisCommand("XREAD", arguments)
                let reply: RedisValue
                if held.isEmpty {
                    reply = try await withWakeUp(wake: { _ = try? await redis.send("XADD", wake, "MAXLEN", 1, "*", "wake", "1") }) {
                        try await redis.blocking(command, timeout: .seconds(1))
                    }
                } else {
                    reply = try await redis.send(command)
                }
                try Task.checkCancellation()
                // Everything older than `now` was in the streams when they were read, except
                // past a stream whose read filled `batch`: there, only what is older than its
                // last entry read.
                var bound = now
                for (stream, entries) in entries(reply) where stream != wake && stream != KeyLayout.newLanes {
                    guard let tag = tags[stream], let last = entries.last else { continue }
                    cursors[stream] = String(last.id)
                    for entry in entries {
                        guard let position = EventPosition(tag: tag, entryID: entry.id),
                            let event = LaneEvent(position: position, flat: entry.fields)
                        else { continue }
                        held.append(event)
                    }
                    if entries.count >= batch, let position = EventPosition(tag: tag, entryID: last.id) { bound = min(bound, position.ms) }
                }
                bound = max(bound, handedOver)
                var ready = held.filter { $0.position.ms < bound }
                held.removeAll { $0.position.ms < bound }
                ready.sort { $0.position < $1.position }
                if !ready.isEmpty, hub.wantsTenants {
                    try await resolveTenants(&ready, cache: &tenantCache, redis: redis)
                }
                handedOver = bound
                hub.deliver(ready, watermark: bound, generation: generation)
                // Busy: let entries gather before the next read, so that each subscriber gets a
                // few larger messages rather than one per entry (fewer wake-ups and writes).
                if !ready.isEmpty { try await Task.sleep(for: limits.linger) }
            } catch is CancellationError {
                break
            } catch {
                logger.warning("reading the event streams failed; retrying in 1 s", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
        _ = try? await redis.send("DEL", wake)
    }

    /// Fills in each event's tenants (and its sole tenant): from `cache`, else one pipelined
    /// `HGET` per job. The
    /// cache is emptied when it grows past 100,000 jobs (a job's tenant never changes).
    static func resolveTenants(_ events: inout [LaneEvent], cache: inout [String: String], redis: RedisClient) async throws {
        var unknown: [String] = []
        var asked: Set<String> = []
        for event in events {
            for job in event.jobs where cache[job] == nil && asked.insert(job).inserted { unknown.append(job) }
        }
        if !unknown.isEmpty {
            if cache.count + unknown.count > 100_000 { cache.removeAll(keepingCapacity: true) }
            var commands: [RedisCommand] = []
            var ids: [String] = []
            for job in unknown {
                guard let id = JobID(job) else { continue }
                commands.append(RedisCommand("HGET", KeyLayout.job(id), "tenant"))
                ids.append(job)
            }
            let replies = commands.isEmpty ? [] : try await redis.pipeline(commands)
            for (job, reply) in zip(ids, replies) { if let tenant = reply.string { cache[job] = tenant } }
        }
        for index in events.indices {
            let tenants = events[index].jobs.map { cache[$0] }
            events[index].tenants = tenants
            if let first = tenants.first ?? nil, tenants.allSatisfy({ $0 == first }) { events[index].soleTenant = first }
        }
    }

    // MARK: - History

    /// Hands to `body`, in position order and in pages, every entry after `after` and older than
    /// `watermark` (ms) that passes `filter`: what a client that saw `after` missed before its
    /// subscription began. Returns `.trimmed` when a stream no longer holds all of them (some
    /// were missed; what is still there is handed over all the same), `.capped` when `after`
    /// is older than `Limits.replayWindow` (what is older than the window is skipped: the
    /// client may have missed some) or more than `Limits.replayEntries` follow it (the oldest
    /// are handed over, the rest skipped).
    public func history(
        after asked: EventPosition, before watermark: UInt64, filter: EventFilter, page: Int = 200,
        _ body: ([LaneEvent]) async throws -> Void
    ) async throws -> HistoryOutcome {
        guard watermark > 0 else { return .complete }
        var outcome = HistoryOutcome.complete
        // Never further back than the window: older than it is missed, not replayed.
        var after = asked
        let seconds = UInt64(clamping: max(0, limits.replayWindow.components.seconds)).multipliedReportingOverflow(by: 1000)
        let window = seconds.overflow ? UInt64.max : seconds.partialValue
        if watermark > window, after.ms < watermark - window {
            after = EventPosition(ms: watermark - window, tag: "", seq: 0)
            outcome = .capped
        }
        var pagers: [HistoryPager] = []
        var tags: Set<String> = []
        for lane in try await lanes() where filter.lanes.map({ $0.contains(lane) }) ?? true {
            tags.insert(LaneTag(lane: lane).rawValue)
        }
        // A lane filter narrows the streams read.
        for tag in tags.sorted() {
            // The first entry id of this stream not yet seen: after `after` in position order.
            let first: (ms: UInt64, seq: UInt64, inclusive: Bool)
            if tag < after.tag {
                guard after.ms < UInt64.max else { continue }
                first = (after.ms + 1, 0, true)
            } else if tag == after.tag {
                first = (after.ms, after.seq, false)
            } else {
                first = (after.ms, 0, true)
            }
            guard first.ms < watermark else { continue }
            let stream = Self.stream(tag: tag)
            if try await trimmed(stream: stream, since: first), outcome == .complete { outcome = .trimmed }
            pagers.append(
                HistoryPager(
                    stream: stream, tag: tag, next: first.inclusive ? "\(first.ms)-\(first.seq)" : "(\(first.ms)-\(first.seq)",
                    end: "\(watermark - 1)-\(UInt64.max)"))
        }
        let size = max(1, page)
        var out: [LaneEvent] = []
        var tenantCache: [String: String] = [:]
        var read = 0
        while true {
            for index in pagers.indices where pagers[index].buffer.isEmpty && !pagers[index].done {
                try await pagers[index].fill(redis: redis, count: size)
            }
            // The smallest head among the streams.
            var best: Int?
            for index in pagers.indices {
                guard let head = pagers[index].buffer.first else { continue }
                if let current = best, let other = pagers[current].buffer.first, !(head.position < other.position) { continue }
                best = index
            }
            guard let best else { break }
            let next = pagers[best].buffer.removeFirst()
            read += max(1, next.jobs.count)
            guard read <= limits.replayEntries else {
                outcome = .capped
                break
            }
            out.append(next)
            if out.count >= size {
                try await flush(&out, filter: filter, cache: &tenantCache, body)
            }
        }
        try await flush(&out, filter: filter, cache: &tenantCache, body)
        return outcome
    }

    private func flush(
        _ out: inout [LaneEvent], filter: EventFilter, cache: inout [String: String], _ body: ([LaneEvent]) async throws -> Void
    ) async throws {
        guard !out.isEmpty else { return }
        if filter.tenant != nil { try await Self.resolveTenants(&out, cache: &cache, redis: redis) }
        let shown = out.compactMap { filter.apply($0) }
        out.removeAll(keepingCapacity: true)
        if !shown.isEmpty { try await body(shown) }
    }

    /// Whether `stream` may have lost (to trimming) an entry at or after `since`. Trimming
    /// takes the oldest entries; Redis 7.0 does not say up to which id, so this answers yes
    /// when entries were removed and the oldest left (or, none left, the last ever added) is
    /// past `since`: never no when some were lost, sometimes yes when the ones lost were all
    /// older than `since`.
    private func trimmed(stream: String, since: (ms: UInt64, seq: UInt64, inclusive: Bool)) async throws -> Bool {
        let reply: RedisValue
        do { reply = try await redis.send("XINFO", "STREAM", stream) } catch {
            return false  // no such stream: nothing was ever in it
        }
        let flat = reply.array ?? []
        var info: [String: RedisValue] = [:]
        for index in stride(from: 0, to: flat.count - 1, by: 2) {
            if let name = flat[index].string { info[name] = flat[index + 1] }
        }
        guard let length = info["length"]?.int, let added = info["entries-added"]?.int, added > length else { return false }
        let sinceTuple = (since.ms, since.seq)
        func position(_ name: String) -> (UInt64, UInt64)? {
            guard let text = info[name]?.string, let position = EventPosition(tag: "", entryID: Substring(text)) else { return nil }
            return (position.ms, position.seq)
        }
        if length == 0 {
            guard let last = position("last-generated-id") else { return false }
            return since.inclusive ? last >= sinceTuple : last > sinceTuple
        }
        guard let first = position("recorded-first-entry-id") else { return false }
        return first > sinceTuple
    }
}

/// What `EventHub.history` could replay.
public enum HistoryOutcome: Sendable, Equatable {
    /// Every entry asked for.
    case complete
    /// Not all: a stream was trimmed past the point asked for.
    case trimmed
    /// Not all: the point asked for is further back than `Limits.replayWindow`, or more entries
    /// follow it than `Limits.replayEntries` (the oldest were replayed).
    case capped
}

/// Reads one stream's history in pages (`XRANGE`), for the merge in `EventHub.history`.
struct HistoryPager {
    let stream: String
    let tag: String
    /// The next page's start (`(id` exclusive), and the last id wanted.
    var next: String
    let end: String
    var buffer: [LaneEvent] = []
    var done = false

    init(stream: String, tag: String, next: String, end: String) {
        self.stream = stream
        self.tag = tag
        self.next = next
        self.end = end
    }

    mutating func fill(redis: RedisClient, count: Int) async throws {
        let reply = try await redis.send("XRANGE", stream, next, end, "COUNT", count)
        let entries = EventHub.entries(.array([.array([.bulkString(Array(stream.utf8)), reply])])).first?.entries ?? []
        for entry in entries {
            guard let position = EventPosition(tag: tag, entryID: entry.id), let event = LaneEvent(position: position, flat: entry.fields)
            else { continue }
            buffer.append(event)
        }
        if let last = entries.last { next = "(" + last.id }
        if entries.count < count { done = true }
    }
}

/// The events of one read on their way to the subscribers (`EventHub.deliver`): the message for
/// each filter, each event written as an SSE frame at most once (when some filter takes it
/// whole), and the frames a message holds joined into one buffer.
struct DeliveryBatch {
    /// From how many single-job subscribers on, the events' jobs are indexed (one dictionary
    /// pass) rather than each such filter looking through every job of every event.
    static let indexFrom = 8

    let events: [LaneEvent]
    private var frames: [ByteBuffer?]
    private var jobIndex: [String: [Int]]?

    init(_ events: [LaneEvent], indexJobs: Bool) {
        self.events = events
        self.frames = Array(repeating: nil, count: events.count)
        if indexJobs {
            var index: [String: [Int]] = [:]
            for (position, event) in events.enumerated() {
                for job in event.jobs where index[job]?.last != position { index[job, default: []].append(position) }
            }
            jobIndex = index
        }
    }

    /// What `filter` is handed: the events it passes (in order) and their frames joined; nil
    /// when it passes none.
    mutating func message(for filter: EventFilter) -> HubMessage? {
        var shown: [LaneEvent] = []
        var parts: [ByteBuffer] = []
        func take(_ position: Int) {
            let event = events[position]
            guard let passed = filter.apply(event) else { return }
            if passed.jobs.count == event.jobs.count {
                if frames[position] == nil { frames[position] = EventsController.frame(event) }
                parts.append(frames[position]!)
            } else {
                parts.append(EventsController.frame(passed))
            }
            shown.append(passed)
        }
        if let job = filter.job, let jobIndex {
            for position in jobIndex[job] ?? [] { take(position) }
        } else {
            for position in events.indices { take(position) }
        }
        guard !shown.isEmpty else { return nil }
        return .events(shown, frames: Self.joined(parts))
    }

    /// `parts` back to back in one buffer (the one part itself when there is one).
    static func joined(_ parts: [ByteBuffer]) -> ByteBuffer {
        if parts.count == 1 { return parts[0] }
        var buffer = ByteBufferAllocator().buffer(capacity: parts.reduce(0) { $0 + $1.readableBytes })
        for part in parts { buffer.writeImmutableBuffer(part) }
        return buffer
    }
}
