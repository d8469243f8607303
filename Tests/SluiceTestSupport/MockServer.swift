import Hummingbird
import Logging
import SluiceMock

/// Runs `body` with a mock provider served on a loopback port; `body` gets the mock (for its
/// stats) and its base URL, `http://127.0.0.1:<port>`. The server stops when `body` returns.
public func withMockProvider<T: Sendable>(
    _ configuration: MockConfiguration, _ body: (MockProvider, String) async throws -> T
) async throws -> T {
    let mock = MockProvider(configuration: configuration)
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = mock.application(port: 0) { port in continuation.yield(port) }
    return try await withRunning(app, port: ports) { url in try await body(mock, url) }
}

/// Serves `router` on a loopback port while `body` runs; `body` gets `http://127.0.0.1:<port>`.
/// The server's own logs are silenced (its shutdown at the end of a test is no news).
public func withLoopbackServer<T: Sendable>(
    _ router: Router<BasicRequestContext>, name: String, _ body: (String) async throws -> T
) async throws -> T {
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    var logger = Logger(label: name)
    logger.logLevel = .critical
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: name),
        onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
    return try await withRunning(app, port: ports, body)
}

/// Runs `app` while `body` runs, once `port` has named the port it listens on; stops it after.
func withRunning<T: Sendable>(
    _ app: some ApplicationProtocol, port: AsyncStream<Int>, _ body: (String) async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await app.runService()
            return nil
        }
        var iterator = port.makeAsyncIterator()
        let port = await iterator.next()!
        let result = try await body("http://127.0.0.1:\(port)")
        group.cancelAll()
        return result
    }
}

extension Sequence {
    /// `map` with an async transform, in order.
    public func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
