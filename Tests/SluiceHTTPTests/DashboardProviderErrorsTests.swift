import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SluiceCore
import SluiceMock
import SluiceProviders
import SluiceQueue
import SluiceTestSupport
import SluiceWorker
import Testing

/// A provider's last errors: written by real workers calling the mock (served on loopback) or a
/// hostile server, read over `GET /v1/providers` and the dashboard's Providers page.
@Suite(.timeLimit(.minutes(2))) struct DashboardProviderErrorsTests {
    static let variable = "SLUICE_TEST_PROVIDER_KEY"
    /// A key of no well-known shape: only the exact masking of the configured key hides it.
    static let secret = "mock-secret-0123456789abcdef"

    /// Calls in flight together end, and are pushed, in another order than they are stamped (and
    /// several workers push to one list): the list is read newest first by time all the same.
    @Test func errorsPushedOutOfTimeOrderAreReadNewestFirst() async throws {
        try await withRedis { _, redis in
            let at: [Int64] = [1_000, 3_000, 2_000, 5_000, 4_000]
            let entries = at.map { ProviderErrors.Entry(at: UnixMillis($0), status: 500, kind: "retryable", message: "m", model: "a") }
            _ = try await redis.pipeline(ProviderErrors.append(entries, provider: "mock"))
            let read = try await ProviderErrors.read(["mock"], redis: redis)
            #expect(read.first?.map(\.at.value) == [5_000, 4_000, 3_000, 2_000, 1_000])
        }
    }

    /// Serves lane `mock/a` (provider `mock`, the fixture's, at `base`) with a worker pool until
    /// `done` says so; the provider's key is `secret`.
    static func serve(_ queue: JobQueue, base: String, until done: @escaping @Sendable () async throws -> Bool) async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var lane = WorkerLane(
            lane: "mock/a",
            provider: ProviderSettings(name: "mock", kind: .openai, baseURL: base + "/v1", apiKeyEnvironment: variable, timeout: .seconds(30)),
            path: "/chat/completions", limits: .init(), concurrency: 4)
        lane.model = "a"
        // Every call fails in one test: the breaker would pause the lane after 10 in a row.
        lane.breakerFailures = 1_000
        let pool = WorkerPool(queue: queue, lanes: .named([lane]), grace: .seconds(1), logger: logger, environment: [variable: secret])
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await pool.run() }
            let deadline = ContinuousClock.now + .seconds(40)
            while try await !done(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            group.cancelAll()
        }
    }

    static func enqueue(_ queue: JobQueue, _ count: Int) async throws -> [JobID] {
        let payload = Array(#"{"model": "a", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}"#.utf8)
        return try await queue.enqueue((0..<count).map { _ in JobSpec(lane: "mock/a", payload: payload, maxAttempts: 1) }).map(\.id)
    }

    static func allFinished(_ queue: JobQueue, _ ids: [JobID]) async throws -> Bool {
        for id in ids where try await queue.get(id)?.state.isTerminal != true { return false }
        return true
    }

    static func lastErrors(_ api: Fixture) async throws -> [[String: Any]] {
        let list = try await api.request(.get, "/v1/providers", key: api.admin)
        let mock = (list.body["data"] as? [[String: Any]])?.first { $0["provider"] as? String == "mock" }
        return mock?["last_errors"] as? [[String: Any]] ?? []
    }

    @Test func failedCallsAreKeptCappedAndShownAndSuccessesWriteNothing() async throws {
        try await withAPI { api in
            // Successes first: they leave no list behind.
            let fine = try await Self.enqueue(api.queue, 3)
            try await withMockProvider(MockConfiguration()) { _, base in
                try await Self.serve(api.queue, base: base) { try await Self.allFinished(api.queue, fine) }
            }
            #expect(try await api.queue.get(fine[0])?.state == .succeeded)
            #expect(try await api.queue.redis.send("EXISTS", ProviderErrors.key("mock")).int == 0)
            #expect(try await Self.lastErrors(api).isEmpty)

            var failing = MockConfiguration()
            failing.errorRate = 1
            let ids = try await Self.enqueue(api.queue, 25)
            try await withMockProvider(failing) { _, base in
                try await Self.serve(api.queue, base: base) {
                    // Every job dead, and the last second's failures flushed.
                    guard try await Self.allFinished(api.queue, ids) else { return false }
                    return try await api.queue.redis.send("LLEN", ProviderErrors.key("mock")).int == 20
                }
            }
            // 25 failed calls, the newest 20 kept.
            #expect(try await api.queue.redis.send("LLEN", ProviderErrors.key("mock")).int == 20)
            let errors = try await Self.lastErrors(api)
            #expect(errors.count == 20)
            let first = try #require(errors.first)
            #expect(first["status"] as? Int == 500)
            #expect(first["kind"] as? String == "retryable")
            #expect(first["model"] as? String == "a")
            #expect((first["message"] as? String)?.contains("The server had an error") == true, "\(first)")
            #expect((first["at"] as? Double ?? 0) > 1_700_000_000)
            let times = errors.compactMap { $0["at"] as? Double }
            #expect(times == times.sorted(by: >), "newest first")
            // A tenant's key may not read providers at all.
            #expect(try await api.request(.get, "/v1/providers", key: api.acme).status == .forbidden)

            var admin = DashboardBrowser(api)
            _ = try await admin.logIn(api.admin)
            let page = try await admin.get("/ui/providers")
            #expect(page.status == .ok)
            #expect(page.html.contains("<td>HTTP 500</td><td>retryable</td><td>a</td><td class=\"message\">HTTP 500: The server had an error"))
            #expect(page.html.contains("data-live=\"/ui/providers/cards\""))
            let cards = try await admin.get("/ui/providers/cards")
            #expect(cards.status == .ok)
            #expect(cards.html.contains("<table class=\"errors\">"))
            #expect(!cards.html.contains("<html"))
        }
    }

    /// An entry made from any message is at most 300 characters and holds no part of the key,
    /// even one that straddles the cut.
    @Test func anEntryIsCutAndMaskedWhateverItsMessage() {
        let huge = ProviderErrors.Entry(
            at: .current(), status: 500, kind: "retryable", message: Self.secret + String(repeating: "y", count: 1 << 20), model: "a",
            secret: Self.secret)
        #expect(huge.message.count == ProviderErrors.maxMessage)
        #expect(huge.message.hasPrefix("[redacted]yyy"))
        let straddling = ProviderErrors.Entry(
            at: .current(), status: nil, kind: "retryable", message: String(repeating: "z", count: 290) + Self.secret + " tail", model: nil,
            secret: Self.secret)
        #expect(straddling.message.count == ProviderErrors.maxMessage)
        #expect(!straddling.message.contains(String(Self.secret.prefix(6))), "\(straddling.message)")
    }

    /// A provider answering 500 with a 1 MB body that repeats the key it was sent: what is kept is
    /// a few hundred bytes, and not the key.
    @Test func aHugeErrorBodyIsCutAndTheKeyIsMasked() async throws {
        try await withAPI { api in
            let router = Router()
            router.post("/v1/chat/completions") { request, _ -> Response in
                let sent = (request.headers[.authorization] ?? "").replacingOccurrences(of: "Bearer ", with: "")
                let message = "upstream failed for key " + sent + " " + String(repeating: "x", count: 1 << 20)
                let body = #"{"error": {"message": ""# + message + #"", "type": "server_error"}}"#
                return Response(
                    status: .internalServerError, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: body)))
            }
            let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
            let app = Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) })
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await app.runService() }
                var iterator = ports.makeAsyncIterator()
                let port = try #require(await iterator.next())
                let ids = try await Self.enqueue(api.queue, 2)
                try await Self.serve(api.queue, base: "http://127.0.0.1:\(port)") {
                    guard try await Self.allFinished(api.queue, ids) else { return false }
                    return try await api.queue.redis.send("LLEN", ProviderErrors.key("mock")).int == 2
                }
                group.cancelAll()
            }
            let stored = try await api.queue.redis.send("LRANGE", ProviderErrors.key("mock"), 0, -1).array ?? []
            #expect(stored.count == 2)
            for entry in stored {
                let text = try #require(entry.string)
                #expect(text.utf8.count < 1_000, "\(text.utf8.count) bytes kept")
                #expect(!text.contains(Self.secret))
                #expect(!text.contains("Bearer"))
            }
            let errors = try await Self.lastErrors(api)
            let message = try #require(errors.first?["message"] as? String)
            #expect(message.count <= ProviderErrors.maxMessage)
            #expect(message.contains("upstream failed for key [redacted] xxx"), "\(message)")
            #expect(message.hasSuffix("…"))
        }
    }
}
