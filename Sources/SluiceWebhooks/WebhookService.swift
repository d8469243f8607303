import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SluiceCore
import SluiceQueue
import SluiceRedis
import Synchronization
import Tracing

/// How webhooks are sent.
public struct WebhookSettings: Sendable, Hashable {
    /// The delay before each attempt: the first is immediate; the Standard Webhooks schedule by
    /// default (now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h). When it runs out the
    /// delivery is dead-lettered.
    public var schedule: [Duration] = [
        .zero, .seconds(5), .seconds(300), .seconds(1_800), .seconds(7_200), .seconds(18_000), .seconds(36_000),
        .seconds(50_400), .seconds(72_000), .seconds(86_400),
    ]
    /// Each delay is varied by up to this fraction, either way.
    public var jitter = 0.1
    public var timeout: Duration = .seconds(15)
    /// Ranges the SSRF guard lets through (say, loopback for a local receiver).
    public var allowCIDRs: [CIDR] = []
    /// Deliveries sent at once, per process.
    public var concurrency = 32
    /// Deliveries of one key (the key that submitted the job) sent at once, per process; nil is a
    /// quarter of `concurrency` (at least 1). One tenant's slow or black-holed receivers hold at
    /// most this many send slots, so the others always have the rest.
    public var perKeyConcurrency: Int?
    /// How many due deliveries the sender looks at to choose among, each round.
    public var lookahead = 512

    /// `perKeyConcurrency`, or its default.
    public var perKeyLimit: Int { max(1, perKeyConcurrency ?? concurrency / 4) }

    public init() {}
}

/// The webhook service (`sluice up` runs one): it turns every terminal transition of a job that
/// has a `callback_url` into a delivery, and sends due deliveries, signed the Standard Webhooks
/// way.
///
/// - **From events.** It reads every lane's event stream through the consumer group `webhooks`,
///   acknowledging an entry only once its deliveries exist, so a restart resumes where it
///   stopped and skips nothing; an entry read twice creates nothing twice (the delivery id is
///   the job's).
/// - **Sending.** Due deliveries are claimed for a minute (so any process may send, and one that
///   dies mid-send gives them back). 2xx is delivered; 410 disables the endpoint (its pending and
///   future deliveries are not sent); anything else (a timeout, a refused connection, another
///   status) waits for the next slot of the schedule, or for a longer Retry-After; past the last
///   slot it is dead-lettered. Redirects are not followed. Every attempt carries the same
///   `webhook-id`, and a fresh `webhook-timestamp` and signature.
/// - **Fair across tenants.** The sender looks at the due deliveries, takes them round-robin
///   across the keys that submitted them, and never sends more than `perKeyLimit` of one key's at
///   once; when it may have more due than it looks at, it pushes the deliveries of keys at their
///   cap a second back, so that other keys' deliveries behind them come forward.
public final class WebhookService: Service, Sendable {
    /// A callback URL's host alone, for logs: its path and query may carry the receiver's token.
    static func host(of url: String) -> String { URLComponents(string: url)?.host ?? "?" }

    let queue: JobQueue
    let store: WebhookStore
    let settings: WebhookSettings
    let guardian: AddressGuard
    let logger: Logger
    /// Deliveries being sent now, by this process.
    let sending = Atomic<Int>(0)
    /// Of those, how many per submitting key.
    let sendingPerKey = Mutex<[Int64?: Int]>([:])
    /// Rung when there may be a delivery to send: one was created here, or a send ended.
    let work = AsyncDoorbell()

    /// A job's webhook carries its `JobResource` as `data`: the same JSON as `GET /v1/jobs/{id}`.
    public init(queue: JobQueue, store: WebhookStore, settings: WebhookSettings, logger: Logger) {
        self.queue = queue
        self.store = store
        self.settings = settings
        guardian = AddressGuard(allowed: settings.allowCIDRs)
        self.logger = logger
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.dispatchLoop() }
            group.addTask { await self.sendLoop() }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    // MARK: - Events → deliveries

    private func dispatchLoop() async {
        let feed = FinishedJobFeed(queue: queue, group: "webhooks", consumer: "dispatcher")
        await feed.run(logger: logger) { finished in
            try await self.deliverIfWanted(finished.map { ($0.id, "job." + $0.state.rawValue) })
        }
    }

    /// Creates a delivery for each of these finished jobs that has a callback URL. Most have
    /// none: one pipelined read of every job's envelope decides, and only those with a callback
    /// are read whole.
    private func deliverIfWanted(_ finished: [(id: JobID, type: String)]) async throws {
        guard !finished.isEmpty else { return }
        let envelopes = try await queue.redis.pipeline(finished.map { RedisCommand("HGET", KeyLayout.job($0.id), "meta") })
        var wanted: [(id: JobID, type: String, url: String)] = []
        for ((id, type), reply) in zip(finished, envelopes) {
            guard let meta = reply.bytes, !meta.isEmpty, let url = JobEnvelope(decoding: meta).callbackURL else { continue }
            wanted.append((id, type, url))
        }
        guard !wanted.isEmpty else { return }
        // The jobs with a callback, read whole in one pipeline; their deliveries created
        // concurrently, so that the client pipelines those scripts too.
        let records = try await queue.records(wanted.map(\.id))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for ((id, type, url), record) in zip(wanted, records) {
                guard let job = try record?.job() else { continue }
                let body = Self.payload(type: type, at: Date(), job: JobResource(job))
                group.addTask { try await self.store.create(job: id, url: url, key: job.submitter, type: type, body: body) }
            }
            try await group.waitForAll()
        }
        work.ring()  // the sender sends them now, not at its next look
    }

    /// A job's webhook body: `{"data": <the job's resource>, "timestamp", "type"}` (Standard
    /// Webhooks' shape), the resource spliced as its one encoder wrote it.
    static func payload(type: String, at date: Date, job: JobResource) -> [UInt8] {
        var writer = JSONObjectWriter(capacity: 512)
        writer.raw("data", job.encoded)
        writer.string("timestamp", iso8601(date))
        writer.string("type", type)
        return writer.finished()
    }

    static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    // MARK: - Sending

    /// The longest the sender waits without looking at the due deliveries: deliveries created
    /// by another process (a replay, a batch's webhook, another dispatcher) are seen within it.
    static let idleLook: Duration = .seconds(1)

    /// Sends due deliveries, at most `concurrency` at once. It never polls fast: with every
    /// slot busy it waits for a send to end; with nothing due it waits for this process's
    /// dispatcher to create a delivery, or until the next one is due, or `idleLook`.
    private func sendLoop() async {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                let free = settings.concurrency - sending.load(ordering: .relaxed)
                guard free > 0 else {
                    await work.wait(upTo: Self.idleLook)  // rung when a send ends
                    continue
                }
                let taken: [(id: String, key: Int64?)]
                var anyDue = false
                do {
                    let due = try await store.due(limit: settings.lookahead)
                    anyDue = !due.isEmpty
                    let busy = sendingPerKey.withLock { $0 }
                    let plan = Self.plan(due, free: free, perKey: settings.perKeyLimit, busy: busy, seenAll: due.count < settings.lookahead)
                    let ids = Set(try await store.claim(plan.take.map(\.id), deferring: plan.deferring))
                    taken = plan.take.filter { ids.contains($0.id) }
                } catch {
                    logger.warning("webhooks: claiming deliveries failed", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                if taken.isEmpty {
                    // Due ones all held back (their keys at their cap, or claimed by another
                    // process): a send that ends rings. Nothing due: until the next one is.
                    await work.wait(upTo: anyDue ? Self.idleLook : await nextDueIn())
                    continue
                }
                for (id, key) in taken {
                    sending.add(1, ordering: .relaxed)
                    sendingPerKey.withLock { $0[key, default: 0] += 1 }
                    group.addTask {
                        await self.attempt(id)
                        self.sendingPerKey.withLock { counts in
                            counts[key, default: 1] -= 1
                            if counts[key] == 0 { counts[key] = nil }
                        }
                        self.sending.subtract(1, ordering: .relaxed)
                        self.work.ring()  // a slot is free, and the key's cap has room
                    }
                }
            }
        }
    }

    /// How long until the earliest pending delivery is due (a claimed one: when its claim runs
    /// out), at most `idleLook`.
    private func nextDueIn() async -> Duration {
        guard let reply = try? await store.redis.send("ZRANGE", WebhookStore.due, 0, 0, "WITHSCORES").array, reply.count == 2,
            let due = reply[1].string.flatMap({ Double($0) }).flatMap({ Bounded.int($0, in: 0...Int(Bounded.maxMillis)) })
        else { return Self.idleLook }
        let wait = Int64(due) - UnixMillis.current().value
        return .milliseconds(Bounded.clamp(wait, to: 1...Self.idleLook.milliseconds))
    }

    /// Which of the due deliveries (oldest first, with their keys) to send now: round-robin across
    /// keys, at most `free` in all and at most `perKey` of one key's counting the `busy` ones
    /// already being sent. When the due list may not be everything (`seenAll` false), the rest of
    /// the keys at their cap are deferred, so the next look sees past them.
    static func plan(
        _ due: [(id: String, key: Int64?)], free: Int, perKey: Int, busy: [Int64?: Int], seenAll: Bool
    ) -> (take: [(id: String, key: Int64?)], deferring: [String]) {
        var order: [Int64?] = []
        var byKey: [Int64?: [String]] = [:]
        for (id, key) in due {
            if byKey[key] == nil { order.append(key) }
            byKey[key, default: []].append(id)
        }
        var room = Dictionary(uniqueKeysWithValues: order.map { ($0, max(0, perKey - busy[$0, default: 0])) })
        var next = Dictionary(uniqueKeysWithValues: order.map { ($0, 0) })
        var take: [(id: String, key: Int64?)] = []
        var progressed = true
        while take.count < free && progressed {
            progressed = false
            for key in order where take.count < free && room[key]! > 0 && next[key]! < byKey[key]!.count {
                take.append((byKey[key]![next[key]!], key))
                next[key]! += 1
                room[key]! -= 1
                progressed = true
            }
        }
        guard !seenAll else { return (take, []) }
        let deferring = order.filter { room[$0]! == 0 }.flatMap { byKey[$0]![next[$0]!...] }
        return (take, deferring)
    }

    /// One attempt of one delivery, and its record.
    func attempt(_ id: String) async {
        do {
            guard let delivery = try await store.delivery(id), delivery.status == "pending" else { return }
            if try await store.isDisabled(url: delivery.url, key: delivery.key) {
                try await store.record(id, status: "disabled", code: nil, error: "the endpoint is disabled (it answered 410 Gone)")
                return
            }
            let outcome = await traced(delivery) { await send(delivery) }
            switch outcome {
            case .status(let code, _) where (200..<300).contains(code):
                try await store.record(id, status: "delivered", code: code)
            case .status(410, _):
                try await store.disable(url: delivery.url, key: delivery.key)
                try await store.record(id, status: "disabled", code: 410, error: "410 Gone: the endpoint is disabled")
                logger.info("webhooks: an endpoint answered 410 and is disabled", metadata: ["host": "\(Self.host(of: delivery.url))", "delivery": "\(delivery.id)"])
            case .refused(let why):
                try await store.record(id, status: "dead", code: nil, error: why)
                logger.warning("webhooks: delivery refused", metadata: ["delivery": "\(id)", "why": "\(why)"])
            case .status(let code, let retryAfter):
                try await retryLater(delivery, code: code, error: "HTTP \(code)", retryAfter: retryAfter)
            case .failed(let why):
                try await retryLater(delivery, code: nil, error: why, retryAfter: nil)
            }
        } catch {
            // The claim runs out and the delivery is tried again.
            logger.warning("webhooks: delivery failed", metadata: ["delivery": "\(id)", "error": "\(error)"])
        }
    }

    private func retryLater(_ delivery: WebhookStore.Delivery, code: Int?, error: String, retryAfter: Duration?) async throws {
        let next = delivery.attempts + 1  // the index of the next attempt in the schedule
        guard next < settings.schedule.count else {
            try await store.record(delivery.id, status: "dead", code: code, error: error + "; retries used up")
            logger.warning(
                "webhooks: delivery dead-lettered",
                metadata: ["delivery": "\(delivery.id)", "host": "\(Self.host(of: delivery.url))", "attempts": "\(next)", "error": "\(error)"])
            return
        }
        let planned = settings.schedule[next]
        let jittered = planned * (1 + Double.random(in: -settings.jitter...settings.jitter))
        let wait = max(jittered, retryAfter ?? .zero)
        try await store.record(
            delivery.id, status: "pending", next: UnixMillis(UnixMillis.current().value + wait.milliseconds), code: code, error: error)
    }

    enum Outcome {
        case status(Int, retryAfter: Duration?)
        case failed(String)
        case refused(String)
    }

    /// The longest a receiver's `Retry-After` delays the next attempt.
    static let maxRetryAfter: Duration = .seconds(86_400)

    /// POSTs the delivery to the address its host was checked to resolve to.
    private func send(_ delivery: WebhookStore.Delivery) async -> Outcome {
        let target: AddressGuard.Target
        do { target = try await guardian.check(delivery.url) } catch { return .refused("\(error)") }
        var secrets: [WebhookSecret] = []
        if let key = delivery.key { secrets = (try? await store.secrets(key: key)) ?? [] }
        guard !secrets.isEmpty else { return .refused("the submitting key has no webhook secret to sign with") }
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(5), read: .seconds(Int64(settings.timeout.components.seconds))))
        // Connect to the checked address (SNI and Host stay the URL's host).
        configuration.dnsOverride = [target.host: target.address]
        configuration.connectionPool.retryConnectionEstablishment = false
        // AsyncHTTPClient's own spans would carry the callback URL (its path and query may hold the
        // receiver's token): none; the delivery's span (`traced`) is the trace, and its context is sent.
        configuration.tracing.tracer = nil
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        defer { client.shutdown { _ in } }
        let timestamp = Int64(Date().timeIntervalSince1970)
        var request = HTTPClientRequest(url: delivery.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Sluice-Webhooks/1")
        request.headers.add(name: "webhook-id", value: delivery.id)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        request.headers.add(
            name: "webhook-signature", value: WebhookSignature.sign(id: delivery.id, timestamp: timestamp, body: delivery.body, secrets: secrets))
        request.body = .bytes(ByteBuffer(bytes: delivery.body))
        if JobTracing.isEnabled, let context = ServiceContext.current, let traceparent = JobTracing.traceparent(of: context) {
            request.headers.add(name: "traceparent", value: traceparent)
        }
        do {
            let response = try await client.execute(request, timeout: .seconds(Int64(settings.timeout.components.seconds)))
            _ = try? await response.body.collect(upTo: 64 << 10)
            // The receiver's Retry-After (seconds), clamped into 0...24 h; NaN or no number is ignored.
            let header = response.headers.first(name: "retry-after")
            let retryAfter = header.flatMap { Bounded.clampedSeconds($0, cap: Self.maxRetryAfter) }
            if let header, retryAfter == nil || retryAfter == Self.maxRetryAfter {
                logger.notice(
                    "webhook retry-after ignored or clamped",
                    metadata: ["delivery": "\(delivery.id)", "value": "\(header.prefix(40))", "cap_s": "\(Self.maxRetryAfter.components.seconds)"])
            }
            return .status(Int(response.status.code), retryAfter: retryAfter)
        } catch {
            return .failed("\(error)")
        }
    }
}

extension WebhookSettings {
    /// From the configuration's `webhooks` section; a CIDR that does not parse names its key.
    public init(_ configuration: SluiceConfiguration.Webhooks) throws(ConfigurationError) {
        self.init()
        if let schedule = configuration.schedule { self.schedule = schedule }
        jitter = configuration.jitter
        timeout = configuration.timeout
        concurrency = configuration.concurrency
        allowCIDRs = try configuration.allowCIDRs.enumerated().map { (index, text) throws(ConfigurationError) in
            guard let cidr = CIDR(text) else {
                throw ConfigurationError(key: "webhooks.allow_cidrs[\(index)]", problem: "'\(text)' is not a CIDR such as 127.0.0.0/8 or ::1/128")
            }
            return cidr
        }
    }
}
