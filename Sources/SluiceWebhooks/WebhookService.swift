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
public final class WebhookService: Service, Sendable {
    let queue: JobQueue
    let store: WebhookStore
    let settings: WebhookSettings
    let guardian: AddressGuard
    let render: @Sendable (Job) -> [String: Any]
    let logger: Logger
    /// Deliveries being sent now, by this process.
    let sending = Atomic<Int>(0)

    /// `render` makes the job's JSON (`data` of the payload): the same as `GET /v1/jobs/{id}`.
    public init(
        queue: JobQueue, store: WebhookStore, settings: WebhookSettings, logger: Logger,
        render: @escaping @Sendable (Job) -> [String: Any]
    ) {
        self.queue = queue
        self.store = store
        self.settings = settings
        guardian = AddressGuard(allowed: settings.allowCIDRs)
        self.render = render
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
            guard let meta = reply.bytes, meta.firstRange(of: Array(#""callback_url""#.utf8)) != nil,
                let envelope = try? JSONSerialization.jsonObject(with: Data(meta)) as? [String: Any],
                let url = envelope["callback_url"] as? String
            else { continue }
            wanted.append((id, type, url))
        }
        guard !wanted.isEmpty else { return }
        // The jobs with a callback, read whole in one pipeline; their deliveries created
        // concurrently, so that the client pipelines those scripts too.
        let records = try await queue.records(wanted.map(\.id))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for ((id, type, url), record) in zip(wanted, records) {
                guard let job = try record?.job() else { continue }
                let payload: [String: Any] = ["type": type, "timestamp": Self.iso8601(Date()), "data": render(job)]
                let body = try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys, .withoutEscapingSlashes])
                group.addTask { try await self.store.create(job: id, url: url, key: job.submitter, type: type, body: Array(body)) }
            }
            try await group.waitForAll()
        }
    }

    static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    // MARK: - Sending

    private func sendLoop() async {
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                let free = settings.concurrency - sending.load(ordering: .relaxed)
                guard free > 0 else {
                    try? await Task.sleep(for: .milliseconds(20))
                    continue
                }
                let ids: [String]
                do { ids = try await store.claim(count: free) } catch {
                    logger.warning("webhooks: claiming deliveries failed: \(error)")
                    try? await Task.sleep(for: .seconds(1))
                    continue
                }
                if ids.isEmpty {
                    try? await Task.sleep(for: .milliseconds(50))
                    continue
                }
                for id in ids {
                    sending.add(1, ordering: .relaxed)
                    group.addTask {
                        await self.attempt(id)
                        self.sending.subtract(1, ordering: .relaxed)
                    }
                }
            }
        }
    }

    /// One attempt of one delivery, and its record.
    func attempt(_ id: String) async {
        do {
            guard let delivery = try await store.delivery(id), delivery.status == "pending" else { return }
            if try await store.isDisabled(url: delivery.url) {
                try await store.record(id, status: "disabled", code: nil, error: "the endpoint is disabled (it answered 410 Gone)")
                return
            }
            let outcome = await send(delivery)
            switch outcome {
            case .status(let code, _) where (200..<300).contains(code):
                try await store.record(id, status: "delivered", code: code)
            case .status(410, _):
                try await store.disable(url: delivery.url)
                try await store.record(id, status: "disabled", code: 410, error: "410 Gone: the endpoint is disabled")
                logger.info("webhooks: \(delivery.url) answered 410; the endpoint is disabled")
            case .refused(let why):
                try await store.record(id, status: "dead", code: nil, error: why)
                logger.warning("webhooks: delivery \(id) refused: \(why)")
            case .status(let code, let retryAfter):
                try await retryLater(delivery, code: code, error: "HTTP \(code)", retryAfter: retryAfter)
            case .failed(let why):
                try await retryLater(delivery, code: nil, error: why, retryAfter: nil)
            }
        } catch {
            // The claim runs out and the delivery is tried again.
            logger.warning("webhooks: delivery \(id): \(error)")
        }
    }

    private func retryLater(_ delivery: WebhookStore.Delivery, code: Int?, error: String, retryAfter: Duration?) async throws {
        let next = delivery.attempts + 1  // the index of the next attempt in the schedule
        guard next < settings.schedule.count else {
            try await store.record(delivery.id, status: "dead", code: code, error: error + "; retries used up")
            logger.warning("webhooks: delivery \(delivery.id) to \(delivery.url) dead-lettered after \(next) attempts: \(error)")
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
        do {
            let response = try await client.execute(request, timeout: .seconds(Int64(settings.timeout.components.seconds)))
            _ = try? await response.body.collect(upTo: 64 << 10)
            let retryAfter = response.headers.first(name: "retry-after").flatMap { Double($0) }.map { Duration.seconds($0) }
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
