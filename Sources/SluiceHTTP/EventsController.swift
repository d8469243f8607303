import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceQueue
import SluiceRedis

/// Live job events as Server-Sent Events, from the process's `EventHub`:
///
/// - `GET /v1/events?lane=&state=&tenant=&last_event_id=` (scope read, `Accept:
///   text/event-stream` or not): the key's tenant's job events as they happen (an admin key:
///   every tenant's, or one with `tenant=`). Each event (`event: job`) is one transition of one or
///   more jobs; its id (`<lane tag>-<ms>-<seq>`) names its place in the lanes' event streams, and
///   `Last-Event-ID` (or `last_event_id=`) resumes after it: first what the streams still hold
///   after it, then live, without a gap or a repeat. When the streams no longer hold all of it
///   (trimmed), an `event: missed` says so before the rest. A replay is capped
///   (`EventHub.Limits.replayEntries`, `replayWindow`): past the cap, an `event: missed`, then live.
/// - `GET /v1/jobs/{id}/events` with `Accept: text/event-stream` (`JobsController` hands it
///   here): the job's timeline so far, then each transition as it happens (`event: status`, id =
///   the entry's place in the timeline, so `Last-Event-ID` skips what was seen), then `event: end`
///   with the job's final status, and the stream ends.
///
/// Both send `: ping` every `Limits.heartbeat` of silence, and end with `event: dropped` when the
/// client reads too slowly for its buffer (it may resume from the last id it got). Subscriptions
/// are capped per key and per process (429).
struct EventsController: Sendable {
    let hub: EventHub
    let queue: JobQueue
    let lookup: JobLookup

    /// The most lanes, and states, one stream may name; the longest lane name.
    static let maxLanes = 32
    static let maxLaneName = 200

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.get("events", use: events)
    }

    /// Whether the client asked for an event stream.
    static func wantsStream(_ request: Request) -> Bool {
        request.headers[values: .accept].contains { $0.lowercased().contains("text/event-stream") }
    }

    // MARK: - /v1/events

    @Sendable func events(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try context.require(.read)
        let query = request.uri.queryParameters
        let known: Set<String> = ["lane", "state", "tenant", "last_event_id"]
        if let unknown = query.first(where: { !known.contains(String($0.key)) }) {
            throw APIError.invalid("unknown query parameter '\(unknown.key)'", param: String(unknown.key))
        }
        var filter = EventFilter(tenant: key.tenant)
        if let asked = query["tenant"].map(String.init) {
            guard asked == key.tenant || key.scopes.contains(.admin) else {
                throw APIError(.forbidden, type: "permission", message: "another tenant's events need the admin scope", param: "tenant")
            }
            filter.tenant = asked
        } else if key.scopes.contains(.admin) {
            filter.tenant = nil  // an admin sees every tenant's jobs
        }
        if let text = query["lane"] {
            let lanes = text.split(separator: ",", omittingEmptySubsequences: true).map(String.init)
            guard !lanes.isEmpty, lanes.count <= Self.maxLanes, lanes.allSatisfy({ $0.utf8.count <= Self.maxLaneName }) else {
                throw APIError.invalid("'lane' must name 1 to \(Self.maxLanes) lanes (comma-separated), each at most \(Self.maxLaneName) bytes", param: "lane")
            }
            filter.lanes = Set(lanes)
        }
        if let text = query["state"] {
            let names = text.split(separator: ",", omittingEmptySubsequences: true).map(String.init)
            guard !names.isEmpty, names.count <= JobState.allCases.count, names.allSatisfy({ JobState(rawValue: $0) != nil }) else {
                throw APIError.invalid(
                    "'state' must be one or more of \(JobState.allCases.map(\.rawValue).joined(separator: ", ")) (comma-separated)", param: "state")
            }
            filter.states = Set(names)
        }
        var after: EventPosition?
        if let text = query["last_event_id"].map(String.init) ?? request.headers[HTTPField.Name("Last-Event-ID")!] {
            guard let position = EventPosition(eventID: text) else {
                throw APIError.invalid("'last_event_id' (or Last-Event-ID) must be an event id this API sent: <tag>-<ms>-<seq>", param: "last_event_id")
            }
            after = position
        }
        let subscription = try await subscribe(filter, key: key)
        let (hub, chosen, resumeAfter) = (self.hub, filter, after)
        return Self.stream(hub: hub) { writer in
            defer { subscription.close() }
            try await writer.write(Self.opening)
            if let resumeAfter {
                let outcome = try await hub.history(after: resumeAfter, before: subscription.watermark, filter: chosen) { events in
                    try await writer.write(DeliveryBatch.joined(events.map(Self.frame)))
                }
                switch outcome {
                case .complete: break
                case .trimmed:
                    try await writer.write(
                        Self.frame(event: "missed", id: nil, data: Array(#"{"reason":"the event streams no longer hold every event after the id asked for"}"#.utf8)))
                case .capped:
                    try await writer.write(
                        Self.frame(
                            event: "missed", id: nil,
                            data: Array(#"{"reason":"the id asked for is older than a stream replays, or too many events follow it: some were not replayed"}"#.utf8)))
                }
            }
            for await message in subscription.messages {
                switch message {
                // One buffer per message: one write and one flush to the socket.
                case .events(_, let frames): try await writer.write(frames)
                case .heartbeat: try await writer.write(Self.ping)
                }
            }
            if subscription.wasDropped { try await writer.write(Self.dropped) }
        }
    }

    // MARK: - /v1/jobs/{id}/events

    /// The job's event stream; the caller checked that the key may see the job.
    func jobStream(_ id: JobID, request: Request, key: APIKey) async throws -> Response {
        var seen = 0
        if let text = request.headers[HTTPField.Name("Last-Event-ID")!] {
            guard let count = Bounded.int(text, in: 0...1_000_000) else {
                throw APIError.invalid("Last-Event-ID must be an event id this stream sent (a whole number)", param: "Last-Event-ID")
            }
            seen = count
        }
        // Subscribed before the job is read: a transition after the read wakes the loop.
        let subscription = try await subscribe(EventFilter(job: id.rawValue), key: key)
        let (queue, lookup, skipped) = (self.queue, self.lookup, seen)
        return Self.stream(hub: hub) { writer in
            defer { subscription.close() }
            var seen = skipped
            try await writer.write(Self.opening)
            var messages = subscription.messages.makeAsyncIterator()
            while true {
                // The job as Redis holds it now: what is new in its timeline, and whether it ended.
                let reply = try await queue.redis.send("HMGET", KeyLayout.job(id), "state", "created", "not_before", "log", "why")
                var fields: [String: [UInt8]] = [:]
                for (name, value) in zip(["state", "created", "not_before", "log", "why"], reply.array ?? []) {
                    if let bytes = value.bytes { fields[name] = bytes }
                }
                let timeline: [TimelineEntry]
                let state: String?
                if let live = JobRecord(id: id, fields: fields).timeline() {
                    timeline = live
                    state = fields["state"].map { String(decoding: $0, as: UTF8.self) }
                } else if let archived = try? await lookup.archived(id, by: key) {
                    // It left Redis (its result TTL passed) while followed: the archive's copy.
                    (timeline, state) = (archived.events, archived.state)
                } else {
                    (timeline, state) = ([], nil)
                }
                if seen < timeline.count {
                    try await writer.write(DeliveryBatch.joined(timeline[seen...].enumerated().map { Self.frame(id, $1, index: seen + $0 + 1) }))
                    seen = timeline.count
                }
                let finished = state.flatMap(JobState.init(rawValue:))?.isTerminal ?? true
                if finished {
                    try await writer.write(Self.end(id, status: state))
                    return
                }
                // Wait for the next transition (or a heartbeat's ping).
                var woken = false
                while !woken {
                    guard let message = await messages.next() else {
                        if subscription.wasDropped { try await writer.write(Self.dropped) }
                        return
                    }
                    switch message {
                    case .events: woken = true
                    case .heartbeat: try await writer.write(Self.ping)
                    }
                }
            }
        }
    }

    // MARK: - Writing

    private func subscribe(_ filter: EventFilter, key: APIKey) async throws -> EventSubscription {
        do { return try await hub.subscribe(filter, key: key.id) } catch let error as EventHubError {
            var refusal: APIError
            switch error {
            case .tooManyForKey(let limit):
                refusal = APIError(
                    .tooManyRequests, type: "too_many_streams", message: "this key already has \(limit) event streams open; close one first")
            case .tooMany(let limit):
                refusal = APIError(
                    .tooManyRequests, type: "too_many_streams", message: "this server already serves \(limit) event streams; try again later")
            }
            refusal.headers[.retryAfter] = "1"
            throw refusal
        }
    }

    /// A streamed `text/event-stream` answer written by `write`, finished when it returns. Every
    /// write, the last one included, has `hub.limits.writeTimeout` to complete (see
    /// `DeadlineWriter`).
    static func stream(hub: EventHub, _ write: @escaping @Sendable (DeadlineWriter) async throws -> Void) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", HTTPField.Name("X-Accel-Buffering")!: "no"],
            body: ResponseBody { writer in
                let timed = DeadlineWriter(writer, timeout: hub.limits.writeTimeout, hub: hub)
                try await write(timed)
                try await timed.finish()
            })
    }

    /// Sent first: the headers go out at once, and a client that reconnects waits 2 s.
    static let opening = ByteBuffer(string: "retry: 2000\n: connected\n\n")
    static let ping = ByteBuffer(string: ": ping\n\n")
    static let dropped = frame(
        event: "dropped", id: nil, data: Array(#"{"reason":"the client read too slowly; resume from the last event id"}"#.utf8))

    static func frame(event: String, id: String?, data: [UInt8]) -> ByteBuffer {
        var text = ""
        if let id { text += "id: " + id + "\n" }
        text += "event: " + event + "\ndata: "
        var buffer = ByteBufferAllocator().buffer(capacity: text.utf8.count + data.count + 2)
        buffer.writeString(text)
        buffer.writeBytes(data)
        buffer.writeString("\n\n")
        return buffer
    }

    /// One lane event: `{"at", "from", "info"?, "jobs", "lane", "to"}` (`at` in Unix seconds,
    /// `from` null for jobs just created).
    static func frame(_ event: LaneEvent) -> ByteBuffer {
        var bytes: [UInt8] = []
        // The jobs are most of it (a bulk's entry names thousands): one allocation, not a growth.
        bytes.reserveCapacity(96 + event.lane.utf8.count + (event.info?.utf8.count ?? 0) + event.jobs.reduce(0) { $0 + $1.utf8.count + 3 })
        bytes += Array(#"{"at":"#.utf8)
        bytes += seconds(event.at).utf8
        bytes += Array(#","from":"#.utf8)
        if event.from.isEmpty { bytes += Array("null".utf8) } else { JSONObjectWriter.appendString(event.from, to: &bytes) }
        if let info = event.info {
            bytes += Array(#","info":"#.utf8)
            JSONObjectWriter.appendString(info, to: &bytes)
        }
        bytes += Array(#","jobs":["#.utf8)
        for (index, job) in event.jobs.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            JSONObjectWriter.appendString(job, to: &bytes)
        }
        bytes += Array(#"],"lane":"#.utf8)
        JSONObjectWriter.appendString(event.lane, to: &bytes)
        bytes += Array(#","to":"#.utf8)
        JSONObjectWriter.appendString(event.to, to: &bytes)
        bytes.append(UInt8(ascii: "}"))
        return frame(event: "job", id: event.position.description, data: bytes)
    }

    /// One entry of a job's timeline: `{"at", "info"?, "job", "status"}`, id its place (from 1).
    static func frame(_ id: JobID, _ entry: TimelineEntry, index: Int) -> ByteBuffer {
        var writer = JSONObjectWriter()
        writer.raw("at", Array(seconds(entry.at.value).utf8))
        if let info = entry.info { writer.string("info", info) }
        writer.string("job", id.rawValue)
        writer.string("status", entry.state.rawValue)
        return frame(event: "status", id: String(index), data: writer.finished())
    }

    /// The last event of a job's stream: `{"job", "status"}` (status null: the job is gone).
    static func end(_ id: JobID, status: String?) -> ByteBuffer {
        var writer = JSONObjectWriter()
        writer.string("job", id.rawValue)
        if let status { writer.string("status", status) } else { writer.null("status") }
        return frame(event: "end", id: nil, data: writer.finished())
    }

    /// Unix ms as seconds with three decimals.
    static func seconds(_ ms: Int64) -> String {
        let (whole, rest) = ms.quotientAndRemainder(dividingBy: 1000)
        let fraction = String(rest.magnitude)  // |rest| < 1000; magnitude never traps
        return (ms < 0 && whole == 0 ? "-" : "") + String(whole) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}

/// A response's writer whose every write must complete within `timeout` (and within a second
/// once the hub shuts down): a client that stops reading fills the socket's buffers, and a write
/// to it would otherwise wait for ever, holding the connection, its handler and the server's
/// graceful shutdown. Past the deadline the write is cancelled and `WriteTimeout` thrown: the
/// handler ends, the server closes the connection, the subscription is released.
final class DeadlineWriter: @unchecked Sendable {
    // @unchecked: it holds the response's writer (NIO's outbound channel writer), which is used
    // by one task at a time: each write runs in a child task while the handler's task waits for
    // it (or for its deadline, then for its cancellation) before the next.
    private var writer: any ResponseBodyWriter
    let timeout: Duration
    let hub: EventHub

    struct WriteTimeout: Error {}

    init(_ writer: any ResponseBodyWriter, timeout: Duration, hub: EventHub) {
        self.writer = writer
        self.timeout = timeout
        self.hub = hub
    }

    func write(_ buffer: ByteBuffer) async throws {
        try await withDeadline { try await $0.writer.write(buffer) }
    }

    /// Ends the answer (the last chunk), under the same deadline.
    func finish() async throws {
        try await withDeadline { try await $0.writer.finish(nil) }
    }

    private func withDeadline(_ operation: @escaping @Sendable (DeadlineWriter) async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await operation(self) }
            group.addTask { try await self.deadline() }
            defer { group.cancelAll() }
            // The first to end: the write (done), or the deadline (throws; the write is then
            // cancelled, which NIO's writer honours even while it waits for the socket).
            try await group.next()
        }
    }

    /// Returns never; throws `WriteTimeout` after `timeout`, or a second after the hub began
    /// shutting down; `CancellationError` when the write ended first.
    private func deadline() async throws {
        let end = ContinuousClock.now + timeout
        while true {
            let left = end - ContinuousClock.now
            guard left > .zero else { throw WriteTimeout() }
            if hub.isShuttingDown {
                try await Task.sleep(for: min(left, .seconds(1)))
                throw WriteTimeout()
            }
            try await Task.sleep(for: min(left, .seconds(1)))
        }
    }
}
