import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SluiceCore
@testable import SluiceHTTP
import SluiceMock
import SluiceQueue
import SluiceRedis
import SluiceStore
import SluiceTestSupport
import SluiceWebhooks
import SluiceWorker
import Synchronization
import Testing

private let eventsLogger = Logger(label: "test.events")

/// The live job events (`EventHub`, `GET /v1/events`, `GET /v1/jobs/{id}/events` as SSE), read by
/// a plain-socket SSE client from the API served on loopback, over a real redis-server, with a
/// worker pool calling the mock provider served over HTTP.
@Suite(.timeLimit(.minutes(1))) struct EventStreamTests {
    struct Setup: Sendable {
        let queue: JobQueue
        let client: any TestClientProtocol
        let port: Int
        let hub: EventHub
        let pool: WorkerPool
        let acme: String
        let globex: String
        let admin: String

        func stream(_ path: String, key: String?, headers: [String: String] = [:]) throws -> EventStreamClient {
            try EventStreamClient(port: port, path: path, key: key, headers: headers)
        }

        /// Submits one job to `lane` and returns its id.
        func submit(key: String, lane: String = "mock/m") async throws -> String {
            let response = try await client.execute(
                uri: "/v1/jobs", method: .post, headers: [.authorization: "Bearer \(key)", .contentType: "application/json"],
                body: ByteBuffer(string: #"{"lane": "\#(lane)", "request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}"#))
            #expect(response.status == .accepted)
            let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
            return try #require(body?["id"] as? String)
        }

        func cancel(_ id: String, key: String) async throws {
            let response = try await client.execute(uri: "/v1/jobs/\(id)/cancel", method: .post, headers: [.authorization: "Bearer \(key)"])
            #expect(response.status == .ok)
        }

        func status(_ method: HTTPRequest.Method = .get, _ uri: String, key: String, headers: HTTPFields = [:]) async throws -> HTTPResponse.Status {
            var fields = headers
            fields[.authorization] = "Bearer \(key)"
            return try await client.execute(uri: uri, method: method, headers: fields).status
        }
    }

    /// The API with `limits` for its event hub, a mock provider behind lanes `mock/*` and a
    /// worker pool for lane `mock/m` (not running: a test runs `pool.run()` when it wants jobs
    /// served).
    func withEvents(limits: EventHub.Limits = EventHub.Limits(), _ body: @escaping @Sendable (Setup) async throws -> Void) async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-events-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/sluice.sqlite"))
            let acme = try keys.create(tenant: "acme", scopes: [.submit, .read]).secret
            let globex = try keys.create(tenant: "globex", scopes: [.submit, .read]).secret
            let admin = try keys.create(tenant: "ops", scopes: [.admin]).secret
            let queue = JobQueue(redis: redis)
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            var mock = MockConfiguration()
            mock.latency = .fixed(.milliseconds(5))
            try await withMockProvider(mock) { _, base in
                let configuration = try SluiceConfiguration.load(yaml: """
                    providers:
                      mock: { kind: openai, base_url: "\(base)/v1", limits: { concurrency: 8 } }
                    """)
                let hub = EventHub(queue: queue, limits: limits, logger: eventsLogger)
                let api = SluiceAPI(
                    services: .init(
                        queue: queue, waiter: waiter, keys: keys, archive: ArchiveStore(database: keys.database),
                        webhooks: WebhookStore(redis: redis, retention: queue.configuration.resultTTL), events: hub),
                    settings: SluiceAPI.Settings(configuration))
                let workers = try #require(WorkerLane.configured("mock/m", in: configuration, concurrency: 4))
                let pool = WorkerPool(queue: queue, lanes: .named([workers]), grace: .seconds(1), logger: eventsLogger)
                let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
                try await app.test(.live) { client in
                    let port = try #require(client.port)
                    // The streams still open end before the server stops (as `sluice serve`'s
                    // graceful shutdown ends them), so that it does not wait for them.
                    do {
                        try await body(
                            Setup(queue: queue, client: client, port: port, hub: hub, pool: pool, acme: acme, globex: globex, admin: admin))
                    } catch {
                        hub.closeAll()
                        throw error
                    }
                    hub.closeAll()
                }
            }
        }
    }

    // MARK: - One job's stream

    @Test func jobStreamShowsTheTimelineThenEachTransitionLiveAndEndsWithTheOutcome() async throws {
        try await withEvents { setup in
            let id = try await setup.submit(key: setup.acme)
            // No worker yet: the stream opens with the timeline so far (queued) and stays open.
            let stream = try setup.stream("/v1/jobs/\(id)/events", key: setup.acme)
            #expect(await stream.waitForStatus() == 200)
            #expect(stream.head.lowercased().contains("content-type: text/event-stream"))
            #expect(await stream.wait { $0.contains { $0.event == "status" } })
            try await Task.sleep(for: .milliseconds(300))
            #expect(stream.events.map(\.event) == ["status"])
            #expect(!stream.ended)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await setup.pool.run() }
                #expect(await stream.wait { $0.contains { $0.event == "end" } })
                group.cancelAll()
            }
            let events = stream.events
            #expect(events.filter { $0.event == "status" }.map { $0.json["status"] as? String } == ["queued", "leased", "succeeded"])
            #expect(events.filter { $0.event == "status" }.map(\.id) == ["1", "2", "3"])
            #expect(events.last?.event == "end")
            #expect(events.last?.json["status"] as? String == "succeeded")
            #expect(events.allSatisfy { $0.event == "end" || $0.json["job"] as? String == id })
            // The server ends the stream after the outcome.
            #expect(await eventuallyTrue { stream.ended })

            // A finished job's stream replays its timeline and ends at once; Last-Event-ID skips
            // what the client saw.
            let again = try setup.stream("/v1/jobs/\(id)/events", key: setup.acme, headers: ["Last-Event-ID": "2"])
            #expect(await eventuallyTrue { again.ended })
            #expect(again.events.map(\.event) == ["status", "end"])
            #expect(again.events.first?.json["status"] as? String == "succeeded")
            #expect(again.events.first?.id == "3")

            // Without the Accept header, the same route still answers the JSON timeline.
            let json = try await setup.client.execute(
                uri: "/v1/jobs/\(id)/events", method: .get, headers: [.authorization: "Bearer \(setup.acme)"])
            #expect(json.status == .ok)
            #expect(json.headers[.contentType]?.hasPrefix("application/json") == true)
        }
    }

    // MARK: - Tenancy

    @Test func aTenantsStreamNeverShowsAnotherTenantsJobs() async throws {
        try await withEvents { setup in
            let globexStream = try setup.stream("/v1/events", key: setup.globex)
            let acmeStream = try setup.stream("/v1/events", key: setup.acme)
            let adminStream = try setup.stream("/v1/events", key: setup.admin)
            let adminAcme = try setup.stream("/v1/events?tenant=acme", key: setup.admin)
            for stream in [globexStream, acmeStream, adminStream, adminAcme] { #expect(await stream.waitForStatus() == 200) }
            var acmeJobs: Set<String> = []
            var globexJobs: Set<String> = []
            for _ in 0..<3 {
                acmeJobs.insert(try await setup.submit(key: setup.acme))
                globexJobs.insert(try await setup.submit(key: setup.globex))
            }
            let everything = acmeJobs.union(globexJobs)
            func jobs(_ stream: EventStreamClient) -> Set<String> {
                Set(stream.events.filter { $0.event == "job" }.flatMap { $0.json["jobs"] as? [String] ?? [] })
            }
            #expect(await adminStream.wait { _ in jobs(adminStream) == everything })
            #expect(await globexStream.wait { _ in jobs(globexStream) == globexJobs })
            #expect(await acmeStream.wait { _ in jobs(acmeStream) == acmeJobs })
            #expect(await adminAcme.wait { _ in jobs(adminAcme) == acmeJobs })
            // Every job was created (from null to queued), and nothing else has happened.
            #expect(adminStream.events.filter { $0.event == "job" }.allSatisfy { $0.json["to"] as? String == "queued" && $0.json["from"] is NSNull })
            // Given time, still nothing of the other tenant's.
            try await Task.sleep(for: .milliseconds(500))
            #expect(jobs(globexStream) == globexJobs)
            #expect(jobs(acmeStream) == acmeJobs)

            // A tenant may not ask for another's events, nor follow another's job.
            #expect(try await setup.status(.get, "/v1/events?tenant=acme", key: setup.globex) == .forbidden)
            let foreign = try setup.stream("/v1/jobs/\(acmeJobs.first!)/events", key: setup.globex)
            #expect(await foreign.waitForStatus() == 404)
            // Filters are checked.
            #expect(try await setup.status(.get, "/v1/events?state=nope", key: setup.acme) == .badRequest)
            #expect(try await setup.status(.get, "/v1/events?last_event_id=x", key: setup.acme) == .badRequest)
            #expect(try await setup.status(.get, "/v1/events?color=red", key: setup.acme) == .badRequest)
        }
    }

    // MARK: - Resuming

    @Test func resumingWithLastEventIDMissesNothingAndRepeatsNothing() async throws {
        try await withEvents { setup in
            // Two lanes (two streams, two tags): the order across them must hold too.
            let control = try setup.stream("/v1/events", key: setup.acme)
            let first = try setup.stream("/v1/events", key: setup.acme)
            #expect(await control.waitForStatus() == 200)
            #expect(await first.waitForStatus() == 200)
            var ids: [String] = []
            for index in 0..<4 { ids.append(try await setup.submit(key: setup.acme, lane: index % 2 == 0 ? "mock/m" : "mock/other")) }
            #expect(await first.wait { $0.filter { $0.event == "job" }.count >= 4 })
            first.close()
            let seen = first.events.filter { $0.event == "job" }
            let lastID = try #require(seen.last?.id)
            // While the client is away: more jobs, and cancels (each a transition in its lane).
            for index in 0..<4 { ids.append(try await setup.submit(key: setup.acme, lane: index % 2 == 0 ? "mock/other" : "mock/m")) }
            for id in ids.prefix(3) { try await setup.cancel(id, key: setup.acme) }
            let resumed = try setup.stream("/v1/events", key: setup.acme, headers: ["Last-Event-ID": lastID])
            #expect(await resumed.waitForStatus() == 200)
            // Live again: one more of each.
            let late = try await setup.submit(key: setup.acme)
            try await setup.cancel(ids[3], key: setup.acme)
            func entries(_ stream: EventStreamClient) -> [String] {
                stream.events.filter { $0.event == "job" }.compactMap(\.id)
            }
            // The control saw 8 creations, 4 cancels and the late creation: 13 entries.
            #expect(await control.wait { _ in entries(control).count >= 13 })
            let expected = entries(control)
            #expect(await resumed.wait { _ in joined(seen: seen, resumed) == expected })
            #expect(joined(seen: seen, resumed) == expected)
            #expect(Set(expected).count == expected.count)
            #expect(resumed.events.allSatisfy { $0.event != "missed" })
            #expect(control.events.filter { $0.event == "job" }.flatMap { $0.json["jobs"] as? [String] ?? [] }.contains(late))
            // The resume id is the same through the query.
            let byQuery = try setup.stream("/v1/events?last_event_id=\(lastID)", key: setup.acme)
            #expect(await byQuery.wait { _ in joined(seen: seen, byQuery) == expected })
        }
    }

    /// What the first connection saw, then what the resumed one saw.
    private func joined(seen: [EventStreamClient.Frame], _ resumed: EventStreamClient) -> [String] {
        seen.compactMap(\.id) + resumed.events.filter { $0.event == "job" }.compactMap(\.id)
    }

    @Test func resumingPastWhatTheStreamsStillHoldSaysSomeWereMissed() async throws {
        try await withEvents { setup in
            let first = try setup.stream("/v1/events", key: setup.acme)
            #expect(await first.waitForStatus() == 200)
            _ = try await setup.submit(key: setup.acme)
            #expect(await first.wait { $0.contains { $0.event == "job" } })
            first.close()
            let lastID = try #require(first.events.first { $0.event == "job" }?.id)
            let later = try await setup.submit(key: setup.acme)
            // The lane's stream is trimmed past what the client saw (as maintenance's cap does).
            _ = try await setup.queue.redis.send("XTRIM", KeyLayout.events(lane: "mock/m"), "MAXLEN", 0)
            let third = try await setup.submit(key: setup.acme)
            let resumed = try setup.stream("/v1/events", key: setup.acme, headers: ["Last-Event-ID": lastID])
            #expect(await resumed.wait { frames in frames.contains { $0.event == "missed" } })
            // What the stream still held is sent after the notice.
            #expect(await resumed.wait { frames in frames.contains { ($0.json["jobs"] as? [String])?.contains(third) == true } })
            // `later` was trimmed from Redis, but the hub's reader may have read it before the trim
            // (the first stream had not yet let go on a loaded machine) and still hand it over:
            // either way is right; what is required is the notice and what the stream holds. And
            // it is sent at most once.
            #expect(resumed.events.filter { ($0.json["jobs"] as? [String])?.contains(later) == true }.count <= 1)
        }
    }

    @Test func aReplayIsCappedThenSaysSomeWereMissedAndGoesOnLive() async throws {
        var limits = EventHub.Limits()
        limits.replayEntries = 3
        try await withEvents(limits: limits) { setup in
            let first = try setup.stream("/v1/events", key: setup.acme)
            #expect(await first.waitForStatus() == 200)
            _ = try await setup.submit(key: setup.acme)
            #expect(await first.wait { $0.contains { $0.event == "job" } })
            first.close()
            let lastID = try #require(first.events.first { $0.event == "job" }?.id)
            // The closed stream is let go at a write to it: jobs nudge it until the hub has no
            // subscriber and its reader stops, so that what follows is history to the resumed
            // stream (a reader still running would hand it over live, uncapped, as it should).
            var later: [String] = []
            let deadline = ContinuousClock.now + .seconds(30)
            while setup.hub.count > 0 && ContinuousClock.now < deadline {
                later.append(try await setup.submit(key: setup.acme))
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(setup.hub.count == 0)
            // Six more jobs (one entry each) after what the client saw; a replay stops after three.
            for _ in 0..<6 { later.append(try await setup.submit(key: setup.acme)) }
            let resumed = try setup.stream("/v1/events", key: setup.acme, headers: ["Last-Event-ID": lastID])
            #expect(await resumed.wait { frames in frames.contains { $0.event == "missed" } })
            let beforeNotice = resumed.events.prefix { $0.event != "missed" }
            #expect(beforeNotice.flatMap { ($0.json["jobs"] as? [String]) ?? [] } == Array(later.prefix(3)))
            // Then live.
            let live = try await setup.submit(key: setup.acme)
            #expect(await resumed.wait { frames in frames.contains { ($0.json["jobs"] as? [String])?.contains(live) == true } })
            // A resume from the beginning of time (ms 0) replays at most the cap, then says so.
            let tag = try #require(lastID.split(separator: "-").first)
            let fromZero = try setup.stream("/v1/events?last_event_id=\(tag)-0-0", key: setup.acme)
            #expect(await fromZero.wait { frames in frames.contains { $0.event == "missed" } })
            #expect(fromZero.events.prefix { $0.event != "missed" }.count <= 3)
        }
    }

    // MARK: - Bounds

    @Test func hostileFiltersAndEventIDsAre400sNamingTheParameter() async throws {
        try await withEvents { setup in
            let hostile = [
                "/v1/events?last_event_id=ffffffff-99999999999999999999999-0",  // past UInt64
                "/v1/events?last_event_id=ffffffff--1-0", "/v1/events?last_event_id=FFFFFFFF-1-0",
                "/v1/events?last_event_id=" + String(repeating: "a", count: 10_000),
                "/v1/events?lane=" + (0..<33).map { "l\($0)" }.joined(separator: ","),
                "/v1/events?lane=" + String(repeating: "x", count: 201), "/v1/events?lane=,,,",
                "/v1/events?state=queued,queued2", "/v1/events?state=",
            ]
            for uri in hostile {
                let response = try await setup.client.execute(uri: uri, method: .get, headers: [.authorization: "Bearer \(setup.acme)"])
                #expect(response.status == .badRequest, "\(uri.prefix(80))")
                let body = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                let param = (body?["error"] as? [String: Any])?["param"] as? String
                #expect(["last_event_id", "lane", "state"].contains(param), "\(uri.prefix(80))")
            }
            // A job stream's Last-Event-ID is a whole number within bounds.
            let id = try await setup.submit(key: setup.acme)
            for value in ["-1", "1e9", "99999999999999999999", "x"] {
                let stream = try setup.stream("/v1/jobs/\(id)/events", key: setup.acme, headers: ["Last-Event-ID": value])
                #expect(await stream.waitForStatus() == 400, "\(value)")
            }
            // The process is still serving.
            let stream = try setup.stream("/v1/jobs/\(id)/events", key: setup.acme)
            #expect(await stream.wait { $0.contains { $0.event == "status" } })
        }
    }

    @Test func aSlowSubscriberIsDroppedWithoutHoldingUpTheOthers() async throws {
        var limits = EventHub.Limits()
        limits.buffer = 5
        try await withEvents(limits: limits) { setup in
            // One subscriber never reads; another does.
            let slow = try await setup.hub.subscribe(EventFilter(tenant: "acme"), key: 1)
            let fast = try await setup.hub.subscribe(EventFilter(tenant: "acme"), key: 2)
            let seen = Mutex(0)
            let reader = Task {
                for await message in fast.messages {
                    if case .events(let events, _) = message { seen.withLock { $0 += events.reduce(0) { $0 + $1.jobs.count } } }
                }
            }
            // Jobs one by one, each once the reader saw the one before (so that each comes in a
            // read of its own: a message), until the slow one is dropped.
            var submitted = 0
            while !slow.wasDropped && submitted < 20 {
                _ = try await setup.submit(key: setup.acme)
                submitted += 1
                let total = submitted
                #expect(await eventuallyTrue { seen.withLock { $0 } == total })
            }
            #expect(slow.wasDropped, "submitted \(submitted), the reader saw \(seen.withLock { $0 })")
            #expect(submitted == 6)
            // The reader saw every job, and was not dropped.
            let total = submitted
            #expect(await eventuallyTrue { seen.withLock { $0 } == total })
            #expect(!fast.wasDropped)
            reader.cancel()
            // The slow one's stream ends after the messages it could hold.
            var held = 0
            for await message in slow.messages { if case .events = message { held += 1 } }
            #expect(held == 5)
            fast.close()
            slow.close()
            #expect(await eventuallyTrue { setup.hub.count == 0 })
        }
    }

    @Test func aReadsEventsComeInOrderInOneBufferSharedBySubscribersWithTheSameFilter() async throws {
        var limits = EventHub.Limits()
        limits.linger = .seconds(1)  // so that the jobs submitted meanwhile come in one read
        try await withEvents(limits: limits) { setup in
            let one = try await setup.hub.subscribe(EventFilter(tenant: "acme"), key: 1)
            let two = try await setup.hub.subscribe(EventFilter(tenant: "acme"), key: 2)
            let everyone = try await setup.hub.subscribe(EventFilter(), key: 3)
            var jobs: [String] = []
            for index in 0..<12 { jobs.append(try await setup.submit(key: index % 3 == 2 ? setup.globex : setup.acme)) }
            let followed = jobs[4]
            // Followers of single jobs, past the count from which the hub indexes the jobs.
            var followers: [EventSubscription] = []
            for index in 0..<DeliveryBatch.indexFrom { followers.append(try await setup.hub.subscribe(EventFilter(job: index == 0 ? followed : "job_none\(index)"), key: 4)) }
            // Six cancels, each by the job's tenant: four of acme's (0, 1, 3, 4), two of globex's.
            for (index, id) in jobs.prefix(6).enumerated() { try await setup.cancel(id, key: index % 3 == 2 ? setup.globex : setup.acme) }

            /// The messages of `subscription` until it has seen `count` jobs' transitions.
            func read(_ subscription: EventSubscription, transitions count: Int) async -> [(events: [LaneEvent], frames: ByteBuffer)] {
                var messages: [(events: [LaneEvent], frames: ByteBuffer)] = []
                var seen = 0
                for await message in subscription.messages {
                    guard case .events(let events, let frames) = message else { continue }
                    messages.append((events, frames))
                    seen += events.reduce(0) { $0 + $1.jobs.count }
                    if seen >= count { break }
                }
                return messages
            }
            let acmeJobs = jobs.enumerated().filter { $0.offset % 3 != 2 }.map(\.element)
            // Everyone's: 12 creations and 6 cancels; acme's: 8 creations and 4 cancels.
            let all = await read(everyone, transitions: 18)
            let acme = await read(one, transitions: 12)
            let acmeAgain = await read(two, transitions: 12)
            for (events, frames) in all + acme {
                // The frames are the events', in order, each complete, back to back.
                #expect(String(buffer: frames) == events.map { String(buffer: EventsController.frame($0)) }.joined())
                #expect(events.map(\.position) == events.map(\.position).sorted())
            }
            #expect(all.contains { $0.events.count >= 2 }, "no read gathered two events: \(all.map(\.events.count))")
            // Subscribers with the same filter got the same messages, in the same buffer.
            #expect(acme.count == acmeAgain.count)
            for (mine, theirs) in zip(acme, acmeAgain) {
                #expect(mine.frames == theirs.frames)
                let same = mine.frames.withUnsafeReadableBytes { a in theirs.frames.withUnsafeReadableBytes { b in a.baseAddress == b.baseAddress } }
                #expect(same)
            }
            // A tenant's messages name its jobs only; the creations came in creation order.
            let created = acme.flatMap(\.events).filter { $0.to == "queued" }.flatMap(\.jobs)
            #expect(created == acmeJobs)
            // The follower of one job gets that job's events only, written for it alone: its
            // cancel (its creation too, unless that was handed over before the follower came).
            var mine: [(events: [LaneEvent], frames: ByteBuffer)] = []
            for await message in followers[0].messages {
                guard case .events(let events, let frames) = message else { continue }
                mine.append((events, frames))
                if events.contains(where: { $0.to == "cancelled" }) { break }
            }
            #expect(mine.flatMap(\.events).allSatisfy { $0.jobs == [followed] })
            #expect(["cancelled"] == mine.flatMap(\.events).map(\.to).suffix(1))
            #expect(mine.flatMap(\.events).count <= 2)
            for (events, frames) in mine {
                #expect(String(buffer: frames) == events.map { String(buffer: EventsController.frame($0)) }.joined())
            }
            for subscription in [one, two, everyone] + followers { subscription.close() }
        }
    }

    @Test func aTenantFilterTakesAnEventOfOneTenantWholeAndSplitsAMixedOne() throws {
        let position = EventPosition(ms: 1, tag: "0000000a", seq: 0)
        var single = try #require(LaneEvent(position: position, fields: ["jobs": "job_a,job_b", "lane": "l", "to": "queued"]))
        single.tenants = ["acme", "acme"]
        single.soleTenant = "acme"
        #expect(EventFilter(tenant: "acme").apply(single)?.jobs == ["job_a", "job_b"])
        #expect(EventFilter(tenant: "globex").apply(single) == nil)
        #expect(EventFilter(job: "job_b", tenant: "acme").apply(single)?.jobs == ["job_b"])
        var mixed = single
        mixed.tenants = ["acme", "globex"]
        mixed.soleTenant = nil
        #expect(EventFilter(tenant: "globex").apply(mixed)?.jobs == ["job_b"])
        #expect(EventFilter(tenant: "globex").apply(mixed)?.soleTenant == nil)
        var gone = single
        gone.tenants = ["acme", nil]
        gone.soleTenant = nil
        #expect(EventFilter(tenant: "acme").apply(gone)?.jobs == ["job_a"])
    }

    @Test func subscriptionsAreCappedPerKeyWith429() async throws {
        var limits = EventHub.Limits()
        limits.perKey = 2
        try await withEvents(limits: limits) { setup in
            let one = try setup.stream("/v1/events", key: setup.acme)
            let two = try setup.stream("/v1/events", key: setup.acme)
            #expect(await one.waitForStatus() == 200)
            #expect(await two.waitForStatus() == 200)
            let three = try setup.stream("/v1/events", key: setup.acme)
            #expect(await three.waitForStatus() == 429)
            #expect(three.head.lowercased().contains("retry-after: 1"))
            // Another key is not held up by acme's streams.
            let other = try setup.stream("/v1/events", key: setup.globex)
            #expect(await other.waitForStatus() == 200)
            // A stream that closes frees its place (the server notices at its next write).
            one.close()
            var freed = false
            for _ in 0..<60 where !freed {
                _ = try await setup.submit(key: setup.acme)
                try await Task.sleep(for: .milliseconds(500))
                freed = setup.hub.count == 2
            }
            #expect(freed)
            let again = try setup.stream("/v1/events", key: setup.acme)
            #expect(await again.waitForStatus() == 200)
        }
    }

    @Test func streamsDroppedMidStreamLeaveNoSubscriberOrSocketBehind() async throws {
        var limits = EventHub.Limits()
        limits.perKey = 300
        limits.heartbeat = .milliseconds(300)
        try await withEvents(limits: limits) { setup in
            @Sendable func openDescriptors() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0 }
            let before = openDescriptors()
            var streams: [EventStreamClient] = []
            for index in 0..<200 {
                streams.append(try setup.stream(index % 2 == 0 ? "/v1/events" : "/v1/events?state=succeeded", key: setup.acme))
            }
            for stream in streams { #expect(await stream.waitForStatus() == 200) }
            #expect(setup.hub.count == 200)
            // Every client goes away without a word; the server notices at its next write (a
            // heartbeat at the latest) and lets go of the subscription and the connection.
            for stream in streams { stream.close() }
            streams.removeAll()
            #expect(await eventuallyTrue { setup.hub.count == 0 })
            // 400 descriptors were open (both ends); other tests in this process open some too.
            #expect(await eventuallyTrue { openDescriptors() < before + 100 }, "\(openDescriptors()) open, \(before) before")
            // And the hub still serves.
            let again = try setup.stream("/v1/events", key: setup.acme)
            #expect(await again.waitForStatus() == 200)
            again.close()
        }
    }

    /// Writes `count` entries of about 50 KB each (a bulk's transition naming thousands of jobs)
    /// into lane `mock/m`'s event stream: megabytes for the streams that see them.
    func flood(_ setup: Setup, count: Int = 100) async throws {
        let jobs = (0..<5_000).map { "job_\($0)" }.joined(separator: ",")
        let commands = (0..<count).map { _ in
            RedisCommand("XADD", KeyLayout.events(lane: "mock/m"), "*", "jobs", jobs, "lane", "mock/m", "from", "queued", "to", "cancelled")
        }
        _ = try await setup.queue.redis.pipeline(commands)
    }

    @Test func aClientThatStopsReadingIsDisconnectedAfterTheWriteTimeout() async throws {
        var limits = EventHub.Limits()
        limits.writeTimeout = .seconds(2)
        limits.heartbeat = .milliseconds(300)
        try await withEvents(limits: limits) { setup in
            _ = try await setup.submit(key: setup.acme)  // the lane exists
            let stalled = try StalledClient(port: setup.port, path: "/v1/events", key: setup.admin)
            #expect(await eventuallyTrue { setup.hub.count == 1 && stalled.heldByServer }, "\(setup.hub.count) \(String(describing: stalled.serverSide)) \(stalled.port)")
            try await flood(setup)
            // The socket's buffers fill, the next write waits, and past the deadline the server
            // closes the connection (it would otherwise hold it as long as the client stays) and
            // lets go of the subscription.
            #expect(await eventuallyTrue { (stalled.serverSide?.sendQueue ?? 0) > 0 || !stalled.heldByServer })
            #expect(await eventuallyTrue { !stalled.heldByServer }, "\(String(describing: stalled.serverSide))")
            #expect(await eventuallyTrue { setup.hub.count == 0 })
            // A client that reads is served as before.
            let reader = try setup.stream("/v1/events", key: setup.admin)
            #expect(await reader.waitForStatus() == 200)
            let id = try await setup.submit(key: setup.acme)
            #expect(await reader.wait { $0.contains { ($0.json["jobs"] as? [String])?.contains(id) == true } })
        }
    }

    @Test func aShutdownDoesNotWaitForAClientThatStoppedReading() async throws {
        var limits = EventHub.Limits()
        limits.writeTimeout = .seconds(120)  // far past this test's bounds: the shutdown must not wait for it
        limits.heartbeat = .milliseconds(300)
        try await withEvents(limits: limits) { setup in
            _ = try await setup.submit(key: setup.acme)
            let stalled = try StalledClient(port: setup.port, path: "/v1/events", key: setup.admin)
            #expect(await eventuallyTrue { setup.hub.count == 1 && stalled.heldByServer }, "\(setup.hub.count) \(String(describing: stalled.serverSide)) \(stalled.port)")
            try await flood(setup)
            #expect(await eventuallyTrue { (stalled.serverSide?.sendQueue ?? 0) > 0 })
            try await Task.sleep(for: .seconds(1))  // a heartbeat's write now waits on the full socket
            #expect(stalled.heldByServer)
            // What `sluice serve` does on SIGTERM: the hub ends its streams, and their writes get a
            // second at most.
            setup.hub.shutDown()
            let asked = ContinuousClock.now
            #expect(await eventuallyTrue { !stalled.heldByServer }, "\(String(describing: stalled.serverSide))")
            #expect(ContinuousClock.now - asked < .seconds(20))
            #expect(setup.hub.count == 0)
        }
    }

    @Test func theReaderStopsWhenNobodySubscribes() async throws {
        try await withEvents { setup in
            /// The Redis clients blocked in an XREAD: the hub's reader, while it runs.
            @Sendable func blockedReaders() async throws -> Int {
                let list = try await setup.queue.redis.send("CLIENT", "LIST").string ?? ""
                return list.split(separator: "\n").filter { line in
                    line.contains("cmd=xread") && line.split(separator: " ").contains { $0.hasPrefix("flags=") && $0.contains("b") }
                }.count
            }
            #expect(try await blockedReaders() == 0)
            let stream = try setup.stream("/v1/events", key: setup.acme)
            #expect(await stream.waitForStatus() == 200)
            #expect(await eventually(timeout: .seconds(30)) { ((try? await blockedReaders()) ?? 0) == 1 })
            // The last subscriber leaves (the server notices at its next write: an event here).
            stream.close()
            var stopped = false
            for _ in 0..<60 where !stopped {
                _ = try await setup.submit(key: setup.acme)
                try await Task.sleep(for: .milliseconds(500))
                let blocked = try await blockedReaders()
                stopped = setup.hub.count == 0 && blocked == 0
            }
            let blocked = try await blockedReaders()
            #expect(stopped, "\(setup.hub.count) subscribers, \(blocked) blocked readers")
        }
    }

    @Test func heartbeatsKeepAQuietStreamAlive() async throws {
        var limits = EventHub.Limits()
        limits.heartbeat = .milliseconds(300)
        try await withEvents(limits: limits) { setup in
            let stream = try setup.stream("/v1/events", key: setup.acme)
            #expect(await stream.wait { $0.filter { $0.comment == "ping" }.count >= 2 })
        }
    }
}

/// Waits (30 s at most) until `condition` holds.
func eventuallyTrue(_ condition: @Sendable () -> Bool) async -> Bool {
    await eventually(timeout: .seconds(30)) { condition() }
}
