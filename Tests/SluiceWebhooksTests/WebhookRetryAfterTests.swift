import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import SluiceWebhooks
import Testing

/// A webhook receiver's `Retry-After` is a peer's number: `nan` is ignored, `inf` and `1e300`
/// are held at a day, and the sender survives them all (issue 11).
@Suite struct WebhookRetryAfterTests {
    /// Sends one delivery to a receiver answering 503 with `Retry-After: <value>`; returns the
    /// delivery after that attempt, and the time it was recorded.
    func deliver(retryAfter value: String) async throws -> (WebhookStore.Delivery, UnixMillis, Int) {
        try await withRedis { _, redis in
            try await withPeerServer({ _ in .init(status: 503, headers: [("Retry-After", value)]) }) { peer, base in
                let queue = JobQueue(redis: redis)
                let store = WebhookStore(redis: redis)
                try await store.publishSecrets(key: 1, current: WebhookSecret.generate().text, previous: nil, previousUntil: nil)
                var settings = WebhookSettings()
                settings.allowCIDRs = [CIDR("127.0.0.0/8")!]
                settings.schedule = [.zero, .seconds(5), .seconds(300)]
                settings.jitter = 0
                var logger = Logger(label: "test")
                logger.logLevel = .critical
                let service = WebhookService(queue: queue, store: store, settings: settings, logger: logger)
                try await store.create(subject: "job_hostile", url: base + "/hook", key: 1, type: "job.succeeded", body: Array("{}".utf8))
                let id = WebhookStore.deliveryID(subject: "job_hostile")
                let group = ServiceGroup(services: [service], gracefulShutdownSignals: [], logger: logger)
                return try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask { try await group.run() }
                    let answered = await eventually { (try? await store.delivery(id))?.lastCode == 503 }
                    let at = UnixMillis.current()
                    let delivery = try #require(try await store.delivery(id))
                    await group.triggerGracefulShutdown()
                    try await tasks.waitForAll()
                    #expect(answered)
                    return (delivery, at, peer.count)
                }
            }
        }
    }

    @Test func nanIsIgnoredAndTheScheduleHolds() async throws {
        let (delivery, at, sent) = try await deliver(retryAfter: "nan")
        #expect(sent == 1 && delivery.status == "pending" && delivery.attempts == 1)
        let next = try #require(delivery.nextAt).value - at.value
        #expect(next > 3_000 && next <= 5_000, "the schedule's 5 s: \(next) ms")
    }

    @Test func infAndHugeValuesAreHeldAtADay() async throws {
        for value in ["inf", "1e300", "99999999999999999999"] {
            let (delivery, at, sent) = try await deliver(retryAfter: value)
            #expect(sent == 1 && delivery.status == "pending", "\(value)")
            let next = try #require(delivery.nextAt).value - at.value
            #expect(next > 86_390_000 && next <= 86_400_000, "\(value): a day at most, \(next) ms")
        }
    }

    @Test func aSaneRetryAfterLongerThanTheScheduleIsHonoured() async throws {
        let (delivery, at, _) = try await deliver(retryAfter: "60")
        let next = try #require(delivery.nextAt).value - at.value
        #expect(next > 58_000 && next <= 60_000, "\(next) ms")
    }
}
