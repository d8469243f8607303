import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import SluiceWebhooks
import Synchronization
import Testing

/// A delivery signed during a rotation from HMAC to Ed25519, sent by the real sender over a real
/// redis-server to a receiver on loopback: both entries arrive, each verifies with its own key,
/// and a tampered body verifies with neither.
@Suite struct Ed25519DeliveryTests {
    /// What the receiver got: the webhook headers and the body.
    struct Received: Sendable {
        let id: String
        let timestamp: String
        let signature: String
        let body: [UInt8]
    }

    @Test func aRotationToEd25519SendsBothSignaturesAndEachVerifies() async throws {
        let old = WebhookSecret.generate(.hmac)
        let new = WebhookSecret.generate(.ed25519)
        let received = try await deliverOnce(current: new, previous: old)
        let entries = received.signature.split(separator: " ")
        #expect(entries.count == 2 && entries[0].hasPrefix("v1a,") && entries[1].hasPrefix("v1,"), "\(received.signature)")
        let timestamp = try #require(Int64(received.timestamp))
        let publicKey = try #require(new.publicKey)
        #expect(publicKey.verifies(header: received.signature, id: received.id, timestamp: timestamp, body: received.body))
        // The HMAC entry is the old secret's (what a receiver still on it computes).
        let expected = WebhookSignature.sign(id: received.id, timestamp: timestamp, body: received.body, secrets: [old])
        #expect(String(entries[1]) == expected)
        // Tampered: one byte of the body, or the timestamp, and neither verifies.
        var tampered = received.body
        tampered[tampered.count / 2] ^= 0x01
        #expect(!publicKey.verifies(header: received.signature, id: received.id, timestamp: timestamp, body: tampered))
        #expect(WebhookSignature.sign(id: received.id, timestamp: timestamp, body: tampered, secrets: [old]) != String(entries[1]))
        #expect(!publicKey.verifies(header: received.signature, id: received.id, timestamp: timestamp + 1, body: received.body))
    }

    /// Sends one delivery signed with `current` (and `previous`, still within its overlap) to a
    /// receiver that records it.
    func deliverOnce(current: WebhookSecret, previous: WebhookSecret?) async throws -> Received {
        let got = Mutex<[Received]>([])
        let router = Router()
        router.post("hook") { request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 1 << 20)
            let headers = request.headers
            func header(_ name: String) -> String { HTTPField.Name(name).flatMap { headers[$0] } ?? "" }
            let entry = Received(
                id: header("webhook-id"), timestamp: header("webhook-timestamp"), signature: header("webhook-signature"),
                body: Array(buffer: body))
            got.withLock { $0.append(entry) }
            return .ok
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let receiver = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
        return try await withRedis { _, redis in
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await receiver.runService() }
                var iterator = ports.makeAsyncIterator()
                let port = try #require(await iterator.next())
                let queue = JobQueue(redis: redis)
                let store = WebhookStore(redis: redis)
                try await store.publishSecrets(
                    key: 1, current: current.text, previous: previous?.text, previousUntil: previous.map { _ in UnixMillis(UnixMillis.current().value + 60_000) })
                var settings = WebhookSettings()
                settings.allowCIDRs = [CIDR("127.0.0.0/8")!]
                settings.schedule = [.zero, .seconds(1), .seconds(1)]
                settings.jitter = 0
                let service = WebhookService(queue: queue, store: store, settings: settings, logger: logger)
                try await store.create(
                    subject: "job_ed25519", url: "http://127.0.0.1:\(port)/hook", key: 1, type: "job.succeeded",
                    body: Array(#"{"type":"job.succeeded","data":{"id":"job_ed25519","note":"héllo"}}"#.utf8))
                let group = ServiceGroup(services: [service], gracefulShutdownSignals: [], logger: logger)
                tasks.addTask { try await group.run() }
                let arrived = await eventually(timeout: .seconds(30)) { got.withLock { !$0.isEmpty } }
                await group.triggerGracefulShutdown()
                tasks.cancelAll()
                try? await tasks.waitForAll()
                #expect(arrived, "the delivery arrives")
                return try #require(got.withLock { $0.first })
            }
        }
    }
}
