import Foundation
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Synchronization
import Testing

@testable import SluiceWebhooks

/// A loopback TCP listener on a thread of its own. `answer` false: a black hole that accepts
/// every connection and never says a word. `answer` true: a receiver that answers 200 to each
/// request at once and records its `webhook-id`.
final class TestReceiver: Sendable {
    let port: Int
    let fd: Int32
    let accepted = Atomic<Int>(0)
    let ids = Mutex<[String]>([])
    private let held = Mutex<[Int32]>([])

    init(answer: Bool) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        guard bound == 0, listen(listener, 256) == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        fd = listener
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { return }  // closed: the test is over
                accepted.add(1, ordering: .relaxed)
                if answer {
                    Thread.detachNewThread { self.serve(client) }
                } else {
                    held.withLock { $0.append(client) }
                }
            }
        }
    }

    /// Reads one request (head and body) and answers 200.
    private func serve(_ client: Int32) {
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = read(client, &buffer, buffer.count)
            guard count > 0 else { break }
            request += buffer[0..<count]
            let text = String(decoding: request, as: UTF8.self)
            guard let end = text.range(of: "\r\n\r\n") else { continue }
            let head = text[..<end.lowerBound].lowercased()
            let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            guard text.utf8.distance(from: text.utf8.startIndex, to: end.upperBound) + length <= request.count else { continue }
            if let id = head.split(separator: "\r\n").first(where: { $0.hasPrefix("webhook-id:") }) {
                ids.withLock { $0.append(id.dropFirst("webhook-id:".count).trimmingCharacters(in: .whitespaces)) }
            }
            let answer = Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
            _ = answer.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
            break
        }
        close(client)
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        for client in held.withLock({ $0 }) { close(client) }
    }
}

@Suite struct WebhookFairnessTests {
    /// Round-robin across keys, each key at most `perKey` in flight (counting those already
    /// sending), and the rest of a key at its cap deferred only when the look was not complete.
    @Test func thePlanTakesRoundRobinWithinEachKeysCap() {
        let due: [(id: String, key: Int64?)] = (0..<6).map { ("a\($0)", 1) } + [("b0", 2), ("b1", 2), ("n0", nil)]
        let plan = WebhookService.plan(due, free: 5, perKey: 3, busy: [1: 1], seenAll: false)
        #expect(plan.take.map(\.id) == ["a0", "b0", "n0", "a1", "b1"])
        #expect(plan.deferring == ["a2", "a3", "a4", "a5"], "key 1 is at its cap of 3 (one was already sending)")
        let complete = WebhookService.plan(due, free: 32, perKey: 3, busy: [:], seenAll: true)
        #expect(complete.take.map(\.id) == ["a0", "b0", "n0", "a1", "b1", "a2"] && complete.deferring.isEmpty)
        #expect(WebhookService.plan(due, free: 32, perKey: 1, busy: [1: 1, 2: 1, nil: 1], seenAll: true).take.isEmpty)
    }

    /// One tenant's 50 deliveries go to a receiver that accepts the connection and never answers;
    /// another tenant's go to a quick one. The second tenant's arrive at once, and the black hole
    /// never holds more than its key's share of the send slots. The due list is looked at 16 at a
    /// time, so the quick tenant's deliveries (created last) are only reached by deferring the
    /// stuck tenant's.
    @Test func aBlackHoledTenantCannotHoldEverySendSlot() async throws {
        try await withRedis { _, redis in
            let store = WebhookStore(redis: redis)
            let blackHole = try TestReceiver(answer: false)
            let quick = try TestReceiver(answer: true)
            defer {
                blackHole.stop()
                quick.stop()
            }
            for key: Int64 in [1, 2] {
                try await store.publishSecrets(key: key, current: WebhookSecret.generate().text, previous: nil, previousUntil: nil)
            }
            for index in 0..<50 {
                try await store.create(
                    subject: "stuck\(index)", url: "http://127.0.0.1:\(blackHole.port)/hook", key: 1, type: "job.succeeded", body: Array("{}".utf8))
            }
            for index in 0..<5 {
                try await store.create(
                    subject: "quick\(index)", url: "http://127.0.0.1:\(quick.port)/hook", key: 2, type: "job.succeeded", body: Array("{}".utf8))
            }
            var settings = WebhookSettings()
            settings.allowCIDRs = [CIDR("127.0.0.0/8")!]
            settings.concurrency = 8
            // Far longer than the waits below: without fairness the quick tenant's deliveries would
            // wait for the black hole's sends to time out, so their coming within the waits proves it.
            settings.timeout = .seconds(120)
            settings.lookahead = 16
            #expect(settings.perKeyLimit == 2)
            let service = WebhookService(
                queue: JobQueue(redis: redis), store: store, settings: settings, logger: .init(label: "test"))
            let running = Task { try await service.run() }
            defer { running.cancel() }

            let arrived = await eventually { quick.ids.withLock { $0.count } == 5 }
            #expect(arrived, "the quick tenant got \(quick.ids.withLock { $0 }) while the black hole held \(blackHole.accepted.load(ordering: .relaxed))")
            #expect(Set(quick.ids.withLock { $0 }) == Set((0..<5).map { "msg_quick\($0)" }))
            #expect(blackHole.accepted.load(ordering: .relaxed) <= settings.perKeyLimit, "the stuck tenant held more than its share")
            #expect(blackHole.accepted.load(ordering: .relaxed) >= 1, "the stuck tenant is still sent to")
            // The sender records a delivery just after the receiver has answered: wait for that.
            let recorded = try await eventually(timeout: .seconds(30)) {
                for index in 0..<5 where try await store.delivery("msg_quick\(index)")?.status != "delivered" { return false }
                return true
            }
            #expect(recorded, "the quick tenant's deliveries are recorded delivered")
        }
    }

    /// A key may replay a delivery `replaysPerMinute` times a minute; past that it is told how
    /// long to wait, and another key is not affected.
    @Test func replaysAreLimitedPerKey() async throws {
        try await withRedis { _, redis in
            let store = WebhookStore(redis: redis)
            for _ in 0..<WebhookStore.replaysPerMinute { #expect(try await store.admitReplay(key: 7, perMinute: WebhookStore.replaysPerMinute) == nil) }
            let wait = try #require(try await store.admitReplay(key: 7, perMinute: WebhookStore.replaysPerMinute))
            #expect(wait > .zero && wait <= .seconds(60))
            #expect(try await store.admitReplay(key: 8, perMinute: WebhookStore.replaysPerMinute) == nil)
            #expect(try await redis.send("PTTL", "sluice:wh:replays:7").int ?? -1 > 0, "the window expires")
        }
    }
}
