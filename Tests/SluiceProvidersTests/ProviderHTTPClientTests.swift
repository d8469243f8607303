import NIOCore
import Testing

@testable import SluiceProviders

/// The provider path's HTTP client against a raw scripted server on loopback: pooling, framing,
/// deadlines, cancellation, retries, and hostile answers.
@Suite struct ProviderHTTPClientTests {
    static let headers = [ProviderRequest.Header(name: "Content-Type", value: "application/json", secret: false)]

    /// The default deadline only guards a hang (no test here waits for it to fire).
    static func post(_ client: ProviderHTTPClient, _ server: RawHTTPServer, timeout: Duration = .seconds(30)) async throws -> ProviderResponse {
        try await client.post(url: server.base + "/v1/chat/completions", headers: headers, body: Array(#"{"model":"m"}"#.utf8), timeout: timeout)
    }

    /// Waits (up to 30 s: a hang guard, not a speed check) for the server's stats to satisfy `condition`.
    static func eventually(_ server: RawHTTPServer, _ condition: (RawHTTPServer.Stats) -> Bool) async -> Bool {
        for _ in 0..<600 {
            if condition(server.snapshot()) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return condition(server.snapshot())
    }

    @Test func keepAliveConnectionsAreReusedAndEveryFramingIsRead() async throws {
        let server = try await RawHTTPServer.start { connection, request in
            switch (connection, request) {
            case (0, 0): [.ok("first", headers: "X-A: 1\r\n")]
            case (0, 1): [.send("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nchunk\r\n3\r\ned!\r\n0\r\n\r\n")]
            // No length: the body runs until the server closes.
            case (0, 2): [.send("HTTP/1.1 200 OK\r\n\r\nuntil close"), .wait(.milliseconds(20)), .close]
            default: [.ok("fresh")]
            }
        }
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient()
        let first = try await Self.post(client, server)
        #expect(first.status == 200 && first.body == Array("first".utf8))
        #expect(first.headerPairs.contains { $0.name == "X-A" && $0.value == "1" })
        let second = try await Self.post(client, server)
        #expect(second.status == 201 && second.body == Array("chunked!".utf8))
        let third = try await Self.post(client, server)
        #expect(third.body == Array("until close".utf8))
        let fourth = try await Self.post(client, server)
        #expect(fourth.body == Array("fresh".utf8))
        let stats = server.snapshot()
        #expect(stats.connections == 2, "three calls on one keep-alive connection, a new one after the read-until-close answer")
        #expect(stats.requests == 4)
        // One request as it went on the wire: POST, Host, the headers given, Content-Length, the body.
        let wire = String(decoding: stats.received[0], as: UTF8.self)
        #expect(wire.hasPrefix("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\n"))
        #expect(wire.hasSuffix("Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"model\":\"m\"}"))
        try await client.shutdown()
    }

    @Test func connectionCloseIsHonoured() async throws {
        // The server says Connection: close but leaves the socket open: the client closes it.
        let server = try await RawHTTPServer.start { _, _ in [.ok("bye", headers: "Connection: close\r\n")] }
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient()
        _ = try await Self.post(client, server)
        _ = try await Self.post(client, server)
        #expect(server.snapshot().connections == 2)
        #expect(await Self.eventually(server) { $0.closed >= 1 }, "the client closed the first connection")
        try await client.shutdown()
    }

    @Test func callsBeyondThePerHostLimitWaitTheirTurnOnTheSameConnections() async throws {
        let server = try await RawHTTPServer.start { _, _ in [.wait(.milliseconds(100)), .ok()] }
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient(configuration: .init(connectionsPerHost: 2))
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<6 { group.addTask { try await Self.post(client, server).status } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses == Array(repeating: 200, count: 6))
        let stats = server.snapshot()
        #expect(stats.connections == 2 && stats.maxOpen == 2 && stats.requests == 6)
        try await client.shutdown()
    }

    @Test func aWaitForAConnectionEndsAtTheCallsDeadline() async throws {
        let server = try await RawHTTPServer.start { _, _ in [.wait(.seconds(3)), .ok()] }
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient(configuration: .init(connectionsPerHost: 1))
        let slow = Task { try await Self.post(client, server, timeout: .seconds(60)) }  // a hang guard: the server answers in 3 s
        #expect(await Self.eventually(server) { $0.requests == 1 })
        await #expect(throws: ProviderHTTPError.timeout) { try await Self.post(client, server, timeout: .milliseconds(300)) }
        #expect(try await slow.value.status == 200)
        try await client.shutdown()
    }

    @Test func aReusedConnectionClosedBeforeAnyAnswerIsRetriedOnceOnANewOne() async throws {
        let server = try await RawHTTPServer.start { connection, request in
            connection == 0 && request == 1 ? [.close] : [.ok("c\(connection)")]
        }
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient()
        #expect(try await Self.post(client, server).body == Array("c0".utf8))
        #expect(try await Self.post(client, server).body == Array("c1".utf8))
        let stats = server.snapshot()
        #expect(stats.connections == 2 && stats.requests == 3, "the second call was sent again, once, on a new connection")
        try await client.shutdown()
    }

    @Test func aNewConnectionClosedBeforeAnyAnswerFailsWithoutARetry() async throws {
        let server = try await RawHTTPServer.start { _, _ in [.close] }
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient()
        await #expect(throws: ProviderHTTPError.closedBeforeResponse) { try await Self.post(client, server) }
        #expect(server.snapshot().requests == 1)
        try await client.shutdown()
    }

    /// Each answer a hostile or broken server might send fails that call with a transport error
    /// (classified retryable), closes the connection, and leaves the client working.
    @Test(arguments: [
        ("garbage", [RawHTTPServer.Step.send("\u{0}\u{1}garbage\r\n\r\n"), .close]),
        ("a header over 80 KiB", [.send("HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "a", count: 100_000) + "\r\nContent-Length: 2\r\n\r\nok")]),
        ("a close mid-body", [.send("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial"), .close]),
        ("a close mid-head", [.send("HTTP/1.1 200 OK\r\nContent-Le"), .close]),
        ("a body over the cap", [.ok(String(repeating: "x", count: 5_000))]),
        ("a chunked body over the cap", [.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + String(repeating: "400\r\n" + String(repeating: "y", count: 1024) + "\r\n", count: 5))]),
        ("a huge Content-Length", [.send("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok")]),
        ("a negative Content-Length", [.send("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nok")]),
        ("a bad chunk size", [.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n")]),
    ])
    func hostileAnswersFailTheCallNotTheProcess(_ name: String, _ answer: [RawHTTPServer.Step]) async throws {
        let server = try await RawHTTPServer.start { connection, _ in connection == 0 ? answer : [.ok("fine")] }
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient(configuration: .init(maxBodyBytes: 4_096))
        let result = await ProviderClient(http: client).call(
            ProviderRequest(url: server.base + "/v1/chat/completions", headers: Self.headers, body: [], timeout: .seconds(30)))
        #expect(result.response == nil, "\(name): no answer")
        guard case .retryable = result.outcome else {
            Issue.record("\(name): \(result.outcome)")
            return
        }
        #expect(await Self.eventually(server) { $0.closed >= 1 }, "\(name): the connection was closed")
        #expect(try await Self.post(client, server).body == Array("fine".utf8), "\(name): the client still works")
        try await client.shutdown()
    }

    @Test func anAnswerToNoRequestClosesTheIdleConnection() async throws {
        let server = try await RawHTTPServer.start { connection, _ in
            connection == 0
                ? [.ok("first"), .wait(.milliseconds(50)), .send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")]
                : [.ok("second")]
        }
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient()
        #expect(try await Self.post(client, server).body == Array("first".utf8))
        #expect(await Self.eventually(server) { $0.closed == 1 }, "the stray answer closed the idle connection")
        #expect(try await Self.post(client, server).body == Array("second".utf8), "never the stray answer")
        #expect(server.snapshot().connections == 2)
        try await client.shutdown()
    }

    @Test func anAnswerBeforeTheRequestIsRefusedOrTakenForItsAnswer() async throws {
        // Sent on accept, before the request is written: an answer to no request.
        let server = try await RawHTTPServer.start(onAccept: [.ok("early")]) { _, _ in [] }
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient()
        // The early bytes may come before the request went out (refused by the decoder: the call
        // fails with a transport error) or after (then they are that request's answer).
        do {
            let response = try await Self.post(client, server, timeout: .seconds(2))
            #expect(response.body == Array("early".utf8))
        } catch {
            #expect(error is ProviderHTTPError, "\(error)")
        }
        try await client.shutdown()
    }

    @Test func aSlowDripEndsAtTheDeadlineAndClosesTheConnection() async throws {
        let server = try await RawHTTPServer.start { _, _ in
            [.send("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")] + RawHTTPServer.Step.drip(Array(repeating: 120, count: 1000), every: .milliseconds(50))
        }
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient()
        let started = ContinuousClock.now
        await #expect(throws: ProviderHTTPError.timeout) { try await Self.post(client, server, timeout: .milliseconds(500)) }
        // Far below the 50 s the drip would take (what it catches: reading it to the end).
        #expect(ContinuousClock.now - started < .seconds(20))
        #expect(await Self.eventually(server) { $0.closed == 1 })
        try await client.shutdown()
    }

    @Test func cancellingACallEndsItAtOnceAndClosesItsConnection() async throws {
        let server = try await RawHTTPServer.start { _, _ in [] }  // never answers
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient()
        let call = Task { await ProviderClient(http: client).call(
            ProviderRequest(url: server.base + "/", headers: [], body: [], timeout: .seconds(60))) }
        #expect(await Self.eventually(server) { $0.requests == 1 })
        call.cancel()
        let result = await call.value
        #expect(result.response == nil)
        #expect(result.latency < .seconds(30), "ended by the cancellation, not the timeout")
        #expect(await Self.eventually(server) { $0.closed == 1 })
        try await client.shutdown()
    }

    @Test func idleConnectionsCloseAfterTheIdleTimeout() async throws {
        let server = try await RawHTTPServer.start { _, _ in [.ok()] }
        defer { Task { await server.stop() } }
        let client = ProviderHTTPClient(configuration: .init(idleTimeout: .milliseconds(200)))
        _ = try await Self.post(client, server)
        #expect(await Self.eventually(server) { $0.closed == 1 })
        _ = try await Self.post(client, server)
        #expect(server.snapshot().connections == 2)
        try await client.shutdown()
    }

    @Test func urlsAreParsedWithoutFoundationAndBadOnesRefused() throws {
        let plain = try ProviderHTTPTarget("HTTP://api.example.com/v1/chat?x=1#frag")
        #expect(!plain.tls && plain.host == "api.example.com" && plain.port == 80)
        #expect(plain.path == "/v1/chat?x=1" && plain.hostHeader == "api.example.com")
        let tls = try ProviderHTTPTarget("https://user:p%40ss@[::1]:8443")
        #expect(tls.tls && tls.host == "::1" && tls.port == 8443 && tls.path == "/" && tls.hostHeader == "[::1]:8443")
        #expect(tls.basicAuthorization == "dXNlcjpwQHNz")  // user:p@ss
        #expect(tls.key == ProviderHTTPTarget(tls: true, host: "::1", port: 8443))
        for bad in ["ftp://h/", "http:/h", "http://", "http://h:0/", "http://h:65536/", "http://h:8x/", "http://h/a b", "http://[::1/"] {
            #expect(throws: ProviderHTTPError.self, "\(bad)") { try ProviderHTTPTarget(bad) }
        }
        #expect("\(ProviderHTTPError.invalidURL)".contains("invalid url"))
        let smuggling = [ProviderRequest.Header(name: "X-A", value: "1\r\nX-Injected: 2", secret: false)]
        #expect(throws: ProviderHTTPError.malformedHeader) { try ProviderHTTPClient.requestBytes(target: plain, headers: smuggling, body: []) }
    }

    @Test func aRefusedConnectionFailsAtOnce() async throws {
        let client = ProviderHTTPClient()
        let started = ContinuousClock.now
        await #expect(throws: ProviderHTTPError.self) {
            try await client.post(url: "http://127.0.0.1:9/", headers: [], body: [], timeout: .seconds(60))
        }
        // A refusal is answered at once; the bound is far below the 60 s timeout (what it catches:
        // waiting it out) and loose for a loaded 2-core machine, where the whole suite starting at
        // once has stalled a process for 6 s.
        #expect(ContinuousClock.now - started < .seconds(20))
        try await client.shutdown()
    }
}
