import Foundation
import SluiceCore
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

@testable import SluiceWebhooks

/// Two web replicas each run the webhook service (issue 17): they share the work through the
/// `webhooks` consumer group (each finished job's entry read by one) and the delivery claims
/// (each due delivery sent by one), so every webhook arrives once.
@Suite struct WebhookReplicasTests {
    @Test func twoReplicasSendEachJobsWebhookOnce() async throws {
        try await withRedis { server, redis in
            let receiver = try TestReceiver(answer: true)
            defer { receiver.stop() }
            let store = WebhookStore(redis: redis)
            try await store.publishSecrets(key: 7, current: WebhookSecret.generate().text, previous: nil, previousUntil: nil)
            var settings = WebhookSettings()
            settings.allowCIDRs = [CIDR("127.0.0.0/8")!]
            // Each replica: its own connections, queue and service.
            var services: [WebhookService] = []
            var clients: [RedisClient] = []
            for _ in 0..<2 {
                let client = try await RedisClient.connect(configuration: server.clientConfiguration)
                clients.append(client)
                services.append(
                    WebhookService(
                        queue: JobQueue(redis: client), store: WebhookStore(redis: client), settings: settings, logger: .init(label: "test")))
            }
            defer { for client in clients { client.close() } }
            let running = services.map { service in Task { try await service.run() } }
            defer { for task in running { task.cancel() } }

            // 60 jobs with a callback finish while both run.
            let queue = JobQueue(redis: redis)
            let envelope = JobEnvelope(callbackURL: "http://127.0.0.1:\(receiver.port)/hook").encoded
            let specs = (0..<60).map { _ in JobSpec(lane: "demo", tenant: "acme", payload: Array("{}".utf8), metadata: envelope) }
            let ids = try await queue.enqueue(specs, submitter: 7).map(\.id)
            var done = 0
            while done < ids.count {
                for job in try await queue.lease(lane: "demo", count: 20) {
                    _ = try await queue.complete(job.id, token: job.token, result: Array("ok".utf8))
                    done += 1
                }
            }
            let all = await eventually(timeout: .seconds(30)) { receiver.ids.withLock { $0.count } >= ids.count }
            #expect(all, "\(receiver.ids.withLock { $0.count }) of \(ids.count) webhooks arrived")
            // Anything sent twice would arrive by now (a second send follows its claim at once).
            try await Task.sleep(for: .seconds(1))
            let received = receiver.ids.withLock { $0 }
            #expect(received.count == ids.count, "\(received.count) webhooks for \(ids.count) jobs")
            #expect(Set(received) == Set(ids.map { WebhookStore.deliveryID(subject: $0.rawValue).lowercased() }), "one webhook per job, each job's (the receiver lowercases headers)")
        }
    }
}
