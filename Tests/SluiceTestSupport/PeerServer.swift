import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A scripted HTTP peer on loopback, for tests of how Sluice treats what providers and webhook
/// receivers answer: every POST gets the answer `script` gives for its index (0, 1, …), after
/// the answer's delay. It records when each request arrived and how many were in flight then.
public final class PeerServer: Sendable {
    /// One answer.
    public struct Answer: Sendable {
        public var status: Int
        public var headers: [(name: String, value: String)]
        public var body: String
        public var delay: Duration

        public init(status: Int, headers: [(name: String, value: String)] = [], body: String = "{}", delay: Duration = .zero) {
            self.status = status
            self.headers = headers
            self.body = body
            self.delay = delay
        }

        /// A chat completion with `usage`.
        public static func completion(delay: Duration = .zero, usage: String = #"{"prompt_tokens": 5, "completion_tokens": 3}"#) -> Answer {
            Answer(status: 200, body: #"{"object": "chat.completion", "choices": [], "usage": \#(usage)}"#, delay: delay)
        }

        /// A 429 with these headers.
        public static func rateLimited(_ headers: [(name: String, value: String)]) -> Answer {
            Answer(status: 429, headers: headers, body: #"{"error": {"message": "slow down", "type": "rate_limit"}}"#)
        }
    }

    /// One request as it arrived.
    public struct Arrival: Sendable {
        public var at: ContinuousClock.Instant
        /// Requests in flight when it arrived (not counting itself).
        public var inFlight: Int
        public var status: Int
    }

    let script: @Sendable (Int) -> Answer
    private let state = Mutex<(arrivals: [Arrival], inFlight: Int)>(([], 0))

    init(script: @escaping @Sendable (Int) -> Answer) { self.script = script }

    /// Every request so far, in order of arrival.
    public var arrivals: [Arrival] { state.withLock { $0.arrivals } }
    public var count: Int { state.withLock { $0.arrivals.count } }

    func answer() async -> Response {
        let (index, answer) = state.withLock { state -> (Int, Answer) in
            let index = state.arrivals.count
            let answer = script(index)
            state.arrivals.append(Arrival(at: .now, inFlight: state.inFlight, status: answer.status))
            state.inFlight += 1
            return (index, answer)
        }
        _ = index
        if answer.delay > .zero { try? await Task.sleep(for: answer.delay) }
        state.withLock { $0.inFlight -= 1 }
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        for (name, value) in answer.headers {
            if let name = HTTPField.Name(name) { fields.append(HTTPField(name: name, value: value)) }
        }
        return Response(
            status: HTTPResponse.Status(code: answer.status), headers: fields, body: .init(byteBuffer: ByteBuffer(string: answer.body)))
    }
}

/// Runs `body` with a `PeerServer` on a loopback port; `body` gets it and its base URL,
/// `http://127.0.0.1:<port>`. Every POST path is answered by `script`.
public func withPeerServer<T: Sendable>(
    _ script: @escaping @Sendable (Int) -> PeerServer.Answer, _ body: (PeerServer, String) async throws -> T
) async throws -> T {
    let server = PeerServer(script: script)
    let router = Router()
    router.post("**") { _, _ in await server.answer() }
    return try await withLoopbackServer(router, name: "peer") { url in try await body(server, url) }
}
