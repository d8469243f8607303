import Foundation
import Logging
import SluiceCore
import SluiceHTTP
import SluiceRedis
import SluiceTestSupport
import Synchronization
import Testing

/// The route board's choice path: what a route that reads nothing measured costs it.
@Suite struct RouteBoardTests {
    static let configuration = try! SluiceConfiguration.load(
        yaml: """
            providers:
              mock-a: { kind: openai, base_url: "http://127.0.0.1:9001/v1", limits: { concurrency: 8 } }
              mock-b: { kind: openai, base_url: "http://127.0.0.1:9002/v1", limits: { concurrency: 8 } }
              mock-c: { kind: openai, base_url: "http://127.0.0.1:9003/v1", limits: { concurrency: 8 } }
            routes:
              split: [ { provider: mock-a, model: m, weight: 50 }, { provider: mock-b, model: m, weight: 50 } ]
              chain: [ mock-a/m, mock-c/m ]
              busy: { strategy: least_busy, targets: [mock-b/m, mock-c/m] }
            """)

    @Test func aWeightedOrFallbackPickIsCountedOnlyOnAMeasuredLane() async throws {
        try await withRedis { _, redis in
            let routes = Self.configuration.routes
            let board = RouteBoard(redis: redis, routes: routes, providers: Self.configuration.providers, prices: [:])
            var toB = 0
            for _ in 0..<200 where board.choose(routes["split"]!, deadline: nil).lane == "mock-b/m" { toB += 1 }
            for _ in 0..<50 { #expect(board.choose(routes["chain"]!, deadline: nil).lane == "mock-a/m") }
            #expect(toB > 40 && toB < 160, "\(toB)")
            let lanes = board.conditions.lanes
            // mock-a/m is no measured route's lane: its picks are not kept (nothing reads them).
            #expect(lanes["mock-a/m"] == nil)
            // mock-b/m is also least_busy's: a weighted pick there still counts against its room.
            #expect(lanes["mock-b/m"]?.picked == toB)
            #expect(board.choose(routes["busy"]!, deadline: nil).lane == "mock-c/m")
        }
    }

    /// RESULT route-choice: what one choice costs through the board (this build), per strategy.
    @Test func whatAChoiceCosts() async throws {
        try await withRedis { _, redis in
            let routes = Self.configuration.routes
            let board = RouteBoard(redis: redis, routes: routes, providers: Self.configuration.providers, prices: [:])
            let directory = ModelDirectory(providers: Self.configuration.providers, routes: routes, chooser: board)
            for name in ["chain", "split", "busy", "mock-a/m"] {
                let clock = ContinuousClock()
                let count = 100_000
                var lanes = 0
                let took = clock.measure {
                    for _ in 0..<count { lanes &+= directory.resolve(name)?.lane.utf8.count ?? 0 }
                }
                #expect(lanes > 0)
                print("RESULT route-choice \(name): \(Bounded.seconds(took) * 1e6 / Double(count)) µs a resolve")
            }
        }
    }
}

/// Records what is logged through it (one logger's handler, not the process's).
final class RecordingLogHandler: LogHandler, Sendable {
    let messages = Mutex<[(Logger.Level, String)]>([])
    private let settings = Mutex<(metadata: Logger.Metadata, level: Logger.Level)>(([:], .trace))

    var metadata: Logger.Metadata {
        get { settings.withLock { $0.metadata } }
        set { settings.withLock { $0.metadata = newValue } }
    }

    var logLevel: Logger.Level {
        get { settings.withLock { $0.level } }
        set { settings.withLock { $0.level = newValue } }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(
        level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt
    ) {
        messages.withLock { $0.append((level, message.description)) }
    }
}

extension RouteBoardTests {
    @Test func redisAwayIsLoggedOnceNotEveryRead() async throws {
        let handler = RecordingLogHandler()
        let logger = Logger(label: "test.routes") { _ in handler }
        // Nothing listens on port 1: every read fails at once.
        let redis = RedisClient(configuration: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: 1)))
        defer { redis.close() }
        let board = RouteBoard(
            redis: redis, routes: Self.configuration.routes, providers: Self.configuration.providers, prices: [:],
            every: .milliseconds(20), logger: logger)
        func warnings() -> [String] { handler.messages.withLock { $0.filter { $0.0 == .warning }.map(\.1) } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await board.run() }
            // The first failure is said (a 30 s safety net), then many more reads fail quietly.
            let start = ContinuousClock.now
            while warnings().isEmpty, ContinuousClock.now - start < .seconds(30) { try await Task.sleep(for: .milliseconds(20)) }
            try await Task.sleep(for: .seconds(1))  // about 50 more reads
            group.cancelAll()
        }
        #expect(warnings().count == 1, "\(warnings())")
    }
}
