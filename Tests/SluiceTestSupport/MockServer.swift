import Hummingbird
import SluiceMock

/// Runs `body` with a mock provider served on a loopback port; `body` gets the mock (for its
/// stats) and its base URL, `http://127.0.0.1:<port>`. The server stops when `body` returns.
public func withMockProvider<T: Sendable>(
    _ configuration: MockConfiguration, _ body: (MockProvider, String) async throws -> T
) async throws -> T {
    let mock = MockProvider(configuration: configuration)
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = mock.application(port: 0) { port in continuation.yield(port) }
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await app.runService()
            return nil
        }
        var iterator = ports.makeAsyncIterator()
        let port = await iterator.next()!
        let result = try await body(mock, "http://127.0.0.1:\(port)")
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
