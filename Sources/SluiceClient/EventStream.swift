import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// One Server-Sent Event from Sluice's event streams (`/v1/events`, `/v1/jobs/{id}/events`).
public struct ServerSentEvent: Sendable {
    public var id: String?
    public var event: String
    public var data: String

    /// The data as a JSON object (every Sluice event's data is one); empty when it is not.
    public var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(data.utf8))) as? [String: Any] ?? [:]
    }
}

extension SluiceClient {
    /// Reads the event stream at `path` (`Accept: text/event-stream`), from after `lastEventID`
    /// when given, and hands each event to `handle` (comments such as `: ping` are skipped) until
    /// `handle` returns false or the server ends the stream. `opened` is called once the server
    /// has answered 200 (its subscription is in place from then on). Returns the id of the last
    /// event handed over (for a resume).
    @discardableResult
    public func stream(
        _ path: String, lastEventID: String? = nil, opened: @Sendable () async -> Void = {},
        _ handle: (ServerSentEvent) async throws -> Bool
    ) async throws -> String? {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .GET
        request.headers.add(name: "Accept", value: "text/event-stream")
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        if let lastEventID { request.headers.add(name: "Last-Event-ID", value: lastEventID) }
        let response: HTTPClientResponse
        do {
            // The stream lasts as long as the job or the client; the server pings every 15 s.
            response = try await http.execute(request, timeout: .hours(24 * 366))
        } catch {
            throw ClientError.unreachable(url: baseURL, reason: Self.describe(error))
        }
        guard response.status == .ok else {
            let data = Data((try? await response.body.collect(upTo: 1 << 20))?.readableBytesView ?? ByteBuffer().readableBytesView)
            let error = (try? JSONDecoder().decode(ErrorBody.self, from: data))?.error
            let status = Int(response.status.code)
            throw ClientError.api(
                status: status, type: error?.type ?? "http_\(status)", message: error?.message ?? String(decoding: data.prefix(200), as: UTF8.self),
                param: error?.param, retryAfter: response.headers.first(name: "Retry-After").flatMap { Int($0) })
        }
        await opened()
        var parser = EventStreamParser()
        var last = lastEventID
        do {
            for try await buffer in response.body {
                for event in try parser.feed(buffer.readableBytesView) {
                    if let id = event.id { last = id }
                    guard try await handle(event) else { return last }
                }
            }
        } catch let error as ClientError {
            throw error
        } catch let error as HTTPClientError {
            throw ClientError.unreachable(url: baseURL, reason: Self.describe(error))
        }
        return last
    }
}

extension SluiceClient {
    /// `stream` of one job's events (`GET /v1/jobs/{id}/events`), the id checked first as one
    /// path segment (`invalidArgument` otherwise), as every other call on a job checks it.
    @discardableResult
    public func streamJob(
        _ id: String, lastEventID: String? = nil, _ handle: (ServerSentEvent) async throws -> Bool
    ) async throws -> String? {
        try await stream("/v1/jobs/\(try Self.pathSegment(id))/events", lastEventID: lastEventID, handle)
    }
}

extension SluiceClient {
    /// Reads the event stream at `path` without parsing it, until cancelled or the server ends
    /// it; the bytes read (for benchmarks: a reader that costs next to nothing).
    public func streamBytes(_ path: String, opened: @Sendable () async -> Void = {}) async throws -> Int {
        var request = HTTPClientRequest(url: baseURL + path)
        request.headers.add(name: "Accept", value: "text/event-stream")
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        let response = try await http.execute(request, timeout: .hours(24))
        guard response.status == .ok else {
            throw ClientError.api(status: Int(response.status.code), type: "http_\(response.status.code)", message: "", param: nil, retryAfter: nil)
        }
        await opened()
        var bytes = 0
        do {
            for try await buffer in response.body {
                bytes += buffer.readableBytes
                if Task.isCancelled { break }
            }
        } catch {}
        return bytes
    }
}

/// Cuts an event stream's bytes into events (`id:`, `event:`, `data:` lines; a blank line ends
/// one). An event larger than 16 MiB is refused rather than held.
struct EventStreamParser {
    private var pending: [UInt8] = []
    /// Where the search for a blank line resumes: the bytes before it were searched (an event
    /// that comes in many small reads is scanned once, not once per read).
    private var scanned = 0

    mutating func feed(_ bytes: some Collection<UInt8>) throws -> [ServerSentEvent] {
        pending.append(contentsOf: bytes)
        guard pending.count <= 16 << 20 else { throw ClientError.unexpectedAnswer("an event larger than 16 MiB") }
        var events: [ServerSentEvent] = []
        var start = 0
        var index = scanned
        while index + 1 < pending.count {
            if pending[index] == 10 && pending[index + 1] == 10 {
                if let event = Self.event(pending[start..<index]) { events.append(event) }
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        pending.removeFirst(start)
        // The last byte may begin a blank line with the next read's first.
        scanned = max(0, index - start)
        return events
    }

    private static func event(_ block: ArraySlice<UInt8>) -> ServerSentEvent? {
        var id: String?
        var name = "message"
        var data: [String] = []
        for line in String(decoding: block, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix(":") { continue }
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let field = parts[0]
            var value = parts.count > 1 ? parts[1] : ""
            if value.hasPrefix(" ") { value = value.dropFirst() }
            switch field {
            case "id": id = String(value)
            case "event": name = String(value)
            case "data": data.append(String(value))
            default: continue
            }
        }
        // A block without data (a `retry:` line, a comment) is no event.
        guard !data.isEmpty else { return nil }
        return ServerSentEvent(id: id, event: name, data: data.joined(separator: "\n"))
    }
}

/// The final states of the jobs an event stream reported, for `SluiceClient.follow`.
///
/// The stream carries every job of the key's tenant that ends, not only the ones followed: once
/// the submit has said which jobs are followed (`want`), only theirs are kept; before, at most
/// `maxUnsorted` (a job whose end was not kept is long-polled after, as one the stream missed).
actor FinishedJobs {
    var states: [String: String] = [:]
    /// Where the stream got to (for a resume), and whether it gave up.
    var lastEventID: String?
    var gaveUp = false
    /// The jobs followed; nil until the submit returns.
    var wanted: Set<String>?
    let maxUnsorted: Int

    init(maxUnsorted: Int = 200_000) { self.maxUnsorted = maxUnsorted }

    func giveUp() { gaveUp = true }

    /// From now on only `ids` are kept (and what was kept of other jobs is let go).
    func want(_ ids: Set<String>) {
        wanted = ids
        states = states.filter { ids.contains($0.key) }
    }

    func record(_ jobs: [String], state: String, id: String?) {
        for job in jobs where states[job] == nil {
            if let wanted { guard wanted.contains(job) else { continue } } else { guard states.count < maxUnsorted else { break } }
            states[job] = state
        }
        if let id { lastEventID = id }
    }

    func count(of ids: Set<String>) -> Int { states.keys.reduce(0) { $0 + (ids.contains($1) ? 1 : 0) } }
}

extension SluiceClient {
    /// The states in which a job is finished.
    public static let finalStates: Set<String> = ["succeeded", "failed", "cancelled", "expired", "dead"]

    /// Submits jobs with `submit` and follows them until each has finished, from the key's event
    /// stream (`GET /v1/events?state=<final states>`, opened before `submit` runs, so that no end
    /// is missed): one connection instead of a long-poll per job. Jobs `submit` says already
    /// existed (idempotent replays, which may have finished long ago) are read once each. A
    /// stream that ends early is resumed from its last event id (three times at most), then the
    /// jobs still open are long-polled. `progress` is told how many have finished. Returns the
    /// count of each final state.
    public func follow(
        submit: () async throws -> (ids: [String], replayed: [String]), progress: (Int) -> Void
    ) async throws -> (ids: [String], outcomes: [String: Int]) {
        let finished = FinishedJobs()
        let states = Self.finalStates.sorted().joined(separator: ",")
        let (opened, openedSignal) = AsyncStream.makeStream(of: Bool.self)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var resumes = 0
                while resumes <= 3 {
                    let last = await finished.lastEventID
                    do {
                        try await self.stream(
                            "/v1/events?state=\(states)", lastEventID: last,
                            opened: { openedSignal.yield(true) }
                        ) { event in
                            if event.event == "job", let jobs = event.object["jobs"] as? [String], let to = event.object["to"] as? String {
                                await finished.record(jobs, state: to, id: event.id)
                            }
                            return !Task.isCancelled
                        }
                    } catch {
                        openedSignal.yield(false)  // read only when it came first
                    }
                    if Task.isCancelled { return }
                    resumes += 1
                    try await Task.sleep(for: .milliseconds(500))
                }
                await finished.giveUp()
            }
            var iterator = opened.makeAsyncIterator()
            let streaming = await iterator.next() ?? false
            let (ids, replayed) = try await submit()
            let wanted = Set(ids)
            await finished.want(wanted)
            // Replays may have finished before the stream opened: read each once.
            for id in replayed {
                let status = try await job(id).value.status ?? ""
                if Self.finalStates.contains(status) { await finished.record([id], state: status, id: nil) }
            }
            // From the stream while it lasts; what it leaves open, by long-polls.
            var done = await finished.count(of: wanted)
            progress(done)
            while streaming && done < wanted.count {
                try await Task.sleep(for: .milliseconds(100))
                done = await finished.count(of: wanted)
                progress(done)
                if await finished.gaveUp { break }
            }
            group.cancelAll()
            let seen = await finished.states
            let open = ids.filter { seen[$0] == nil }
            let polled = try await pollUntilFinished(open) { progress(done + $0) }
            var outcomes: [String: Int] = [:]
            for id in ids { if let state = seen[id] ?? polled[id] { outcomes[state, default: 0] += 1 } }
            return (ids, outcomes)
        }
    }

    /// Long-polls every job (64 at a time) until each has finished; their final states.
    public func pollUntilFinished(_ ids: [String], progress: (Int) -> Void = { _ in }) async throws -> [String: String] {
        var states: [String: String] = [:]
        guard !ids.isEmpty else { return states }
        try await withThrowingTaskGroup(of: (String, String).self) { group in
            var next = ids.makeIterator()
            func poll(_ id: String) {
                group.addTask { (id, try await self.job(id, wait: 30).value.status ?? "?") }
            }
            for _ in 0..<64 { if let id = next.next() { poll(id) } }
            while let (id, status) = try await group.next() {
                if Self.finalStates.contains(status) {
                    states[id] = status
                    progress(states.count)
                    if let id = next.next() { poll(id) }
                } else {
                    poll(id)  // not yet: poll it again
                }
            }
        }
        return states
    }
}
