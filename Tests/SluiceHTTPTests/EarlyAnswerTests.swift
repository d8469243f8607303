import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import SluiceQueue
import SluiceStore
import SluiceTestSupport
import Testing

@testable import SluiceHTTP

#if canImport(Glibc)
    import Glibc
#endif

/// An answer given before the request's body was read closes the connection, so that a client
/// that writes its whole body before reading (Python's urllib and requests do) gets it at once.
@Suite struct EarlyAnswerTests {
    /// The API as `sluice serve` runs it (`SluiceAPI.application`), with one submit key.
    func withServer(_ body: @escaping @Sendable (_ port: Int, _ key: String) async throws -> Void) async throws {
        try await withRedis { _, redis in
            let directory = NSTemporaryDirectory() + "sluice-http-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let keys = APIKeyStore(database: try SluiceDatabase(path: directory + "/s.sqlite"))
            let secret = try keys.create(tenant: "acme", scopes: [.submit, .read]).secret
            let queue = JobQueue(redis: redis)
            let waiter = JobWaiter(queue: queue)
            defer { waiter.close() }
            let api = SluiceAPI.testing(queue: queue, waiter: waiter, keys: keys)
            let app = api.application(host: "127.0.0.1", port: 0, logger: Logger(label: "test"))
            try await app.test(.live) { client in
                try await body(try #require(client.port), secret)
            }
        }
    }

    @Test func anOversizedBodyWrittenBeforeReadingGetsThe413AndTheConnectionCloses() async throws {
        try await withServer { port, key in
            let exchange = try await RawExchange.run(
                port: port, head: "POST /v1/jobs HTTP/1.1\r\nHost: sluice\r\nAuthorization: Bearer \(key)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: \(20 << 20)\r\n\r\n",
                bodyBytes: 20 << 20)
            #expect(exchange.response.hasPrefix("HTTP/1.1 413"), "\(exchange.response.prefix(200))")
            #expect(exchange.response.lowercased().contains("connection: close"))
            #expect(exchange.closed, "the server kept the connection open")
            #expect(exchange.seconds < 20)
        }
    }

    /// Python's urllib sends `Connection: close`, and Hummingbird stops reading such a request
    /// after its answer: the client hung until its own timeout.
    @Test func aClientThatAsksToCloseAndWritesFirstGetsThe413() async throws {
        try await withServer { port, key in
            let exchange = try await RawExchange.run(
                port: port, head: "POST /v1/jobs HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\nAuthorization: Bearer \(key)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: \(20 << 20)\r\n\r\n",
                bodyBytes: 20 << 20)
            #expect(exchange.response.hasPrefix("HTTP/1.1 413"), "\(exchange.response.prefix(200))")
            #expect(exchange.closed, "the server kept the connection open")
            #expect(exchange.seconds < 20)
        }
    }

    @Test func aBadKeyWithABigBodyGetsThe401AndTheConnectionCloses() async throws {
        try await withServer { port, _ in
            let exchange = try await RawExchange.run(
                port: port, head: "POST /v1/jobs HTTP/1.1\r\nHost: sluice\r\nAuthorization: Bearer sk-nope\r\n"
                    + "Content-Type: application/json\r\nContent-Length: \(20 << 20)\r\n\r\n",
                bodyBytes: 20 << 20)
            #expect(exchange.response.hasPrefix("HTTP/1.1 401"), "\(exchange.response.prefix(200))")
            #expect(exchange.closed, "the server kept the connection open")
        }
    }

    @Test func anAnswerToABodyReadInFullKeepsTheConnection() async throws {
        try await withServer { port, key in
            let json = #"{"lane": "x", "request": "not an object"}"#
            let exchange = try await RawExchange.run(
                port: port, head: "POST /v1/jobs HTTP/1.1\r\nHost: sluice\r\nAuthorization: Bearer \(key)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n\r\n" + json,
                bodyBytes: 0, keepAliveCheck: 1)
            #expect(exchange.response.hasPrefix("HTTP/1.1 4"), "\(exchange.response.prefix(200))")
            #expect(!exchange.response.lowercased().contains("connection: close"))
            #expect(!exchange.closed)
        }
    }
}

/// One request over a plain socket: the head, then `bodyBytes` of body written in full before
/// anything is read (a write that fails because the server closed ends the writing, as in
/// urllib3), then everything read until the server closes, or `keepAliveCheck` seconds after a
/// whole answer (Content-Length) came, or `readFor` seconds without a byte.
struct RawExchange {
    var response: String
    /// The server closed (EOF or a reset after its answer).
    var closed: Bool
    var seconds: Double

    /// On a thread of its own: its blocking calls must not hold one of the few threads that
    /// run the server's (same process's) tasks.
    static func run(port: Int, head: String, bodyBytes: Int, readFor: Int = 30, keepAliveCheck: Int = 5) async throws -> RawExchange {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(
                    with: Result {
                        try blocking(port: port, head: head, bodyBytes: bodyBytes, readFor: readFor, keepAliveCheck: keepAliveCheck)
                    })
            }.start()
        }
    }

    static func blocking(port: Int, head: String, bodyBytes: Int, readFor: Int, keepAliveCheck: Int) throws -> RawExchange {
        let started = ContinuousClock.now
        let fd = try connectLoopback(port: port)
        defer { close(fd) }
        var timeout = timeval(tv_sec: readFor, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var sendTimeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))

        func write(_ bytes: [UInt8]) -> Bool {
            var offset = 0
            while offset < bytes.count {
                let sent = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if sent <= 0 { return false }
                offset += sent
            }
            return true
        }
        if write(Array(head.utf8)) {
            let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 64 << 10)
            var left = bodyBytes
            while left > 0, write(Array(chunk.prefix(left))) { left -= min(left, chunk.count) }
        }

        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var closed = false
        var complete = false
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received += buffer[0..<count]
                if !complete, isComplete(received) {
                    // The whole answer is in: give the server `keepAliveCheck` seconds to close.
                    complete = true
                    var wait = timeval(tv_sec: keepAliveCheck, tv_usec: 0)
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
                }
                continue
            }
            // 0: EOF. A reset after the answer also means closed; a timeout means still open.
            closed = count == 0 || errno == ECONNRESET
            break
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return RawExchange(response: String(decoding: received, as: UTF8.self), closed: closed, seconds: seconds)
    }

    /// A head and as many body bytes as its Content-Length says.
    private static func isComplete(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let end = text.range(of: "\r\n\r\n") else { return false }
        let length = text[..<end.lowerBound].split(separator: "\r\n")
            .first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        return text.utf8.count - text.utf8.distance(from: text.startIndex, to: end.upperBound) >= length
    }
}
