import CHiredis
import Foundation
import SluiceCore
import Synchronization

/// One hiredis connection with a thread of its own.
///
/// Callers on any task enqueue requests; the connection's thread takes *everything* queued at
/// once, writes it in one go and reads the replies in order. That is auto-pipelining: a thousand
/// concurrent callers cost a handful of round trips, not a thousand. Blocking hiredis calls only
/// ever run on this thread, never on Swift's cooperative pool.
///
/// When Redis goes away, the requests in flight fail with a `RedisError` (never hang), and the
/// thread reconnects in the background with backoff (10 ms doubling to 1 s). A request that finds
/// the connection down makes one immediate attempt, so the first command after Redis is back
/// succeeds.
final class RedisConnection: @unchecked Sendable {
    // @unchecked: `context` and the backoff state are touched only by `thread`; `pending`,
    // `closed` and `idle` only while `condition` is held. Nothing else is mutable.

    struct Request {
        var commands: [RedisCommand]
        var readTimeout: Duration?
        var continuation: UnsafeContinuation<[RedisValue], any Error>
    }

    let configuration: RedisConfiguration
    private let condition = NSCondition()
    private var pending: [Request] = []
    private var closed = false
    private var idle = false
    private var context: UnsafeMutablePointer<redisContext>?
    private var reconnectDelay: Duration = .milliseconds(10)
    private var everConnected = false
    private let roundTripCount = Atomic<Int>(0)
    /// Whether the address is asked again at each connect (Sentinel), so leaving a server that
    /// is no longer the primary helps.
    private let rediscovers: Bool

    init(configuration: RedisConfiguration, name: String) {
        self.configuration = configuration
        if case .sentinel = configuration.endpoint { rediscovers = true } else { rediscovers = false }
        // The thread keeps the connection alive until `close()` ends it.
        let thread = Thread { self.run() }
        thread.name = name
        thread.start()
    }

    /// How many write-then-read cycles this connection has made: the round trips.
    var roundTrips: Int { roundTripCount.load(ordering: .relaxed) }

    /// Sends the commands back to back and returns their replies in order. Error replies come
    /// back as `.error` values; connection problems throw.
    func execute(_ commands: [RedisCommand], readTimeout: Duration? = nil) async throws -> [RedisValue] {
        try await withUnsafeThrowingContinuation { continuation in
            condition.lock()
            if closed {
                condition.unlock()
                continuation.resume(throwing: RedisError.closed)
                return
            }
            pending.append(Request(commands: commands, readTimeout: readTimeout, continuation: continuation))
            if idle { condition.signal() }
            condition.unlock()
        }
    }

    /// Stops the thread; requests not yet sent fail with `RedisError.closed`.
    func close() {
        condition.lock()
        closed = true
        condition.signal()
        condition.unlock()
    }

    // MARK: - The connection's thread

    private func run() {
        var batch: [Request] = []
        while true {
            condition.lock()
            while pending.isEmpty && !closed {
                idle = true
                if context == nil && everConnected {
                    // Down: retry in the background with backoff while nobody is waiting.
                    let woke = condition.wait(until: Date().addingTimeInterval(reconnectDelay.seconds))
                    idle = false
                    if !woke && pending.isEmpty && !closed {
                        condition.unlock()
                        if (try? connect()) == nil {
                            reconnectDelay = min(reconnectDelay * 2, .seconds(1))
                        }
                        condition.lock()
                    }
                } else {
                    condition.wait()
                    idle = false
                }
            }
            idle = false
            swap(&batch, &pending)
            let isClosed = closed
            condition.unlock()

            if isClosed {
                for request in batch { request.continuation.resume(throwing: RedisError.closed) }
                disconnect()
                return
            }
            process(batch)
            batch.removeAll(keepingCapacity: true)
        }
    }

    private func process(_ batch: [Request]) {
        let ctx: UnsafeMutablePointer<redisContext>
        do {
            ctx = try connected()
        } catch {
            for request in batch { request.continuation.resume(throwing: error) }
            return
        }
        for request in batch {
            for command in request.commands { Hiredis.append(command, to: ctx) }
        }
        roundTripCount.add(1, ordering: .relaxed)
        var stale = false
        for (index, request) in batch.enumerated() {
            if let timeout = request.readTimeout { setTimeout(ctx, timeout) }
            var values = [RedisValue]()
            values.reserveCapacity(request.commands.count)
            for _ in request.commands {
                guard let value = Hiredis.readReply(ctx) else {
                    let error = Hiredis.ioError(ctx)
                    disconnect()
                    for failed in batch[index...] { failed.continuation.resume(throwing: error) }
                    return
                }
                values.append(value)
            }
            if request.readTimeout != nil { setTimeout(ctx, configuration.commandTimeout) }
            if rediscovers && values.contains(where: Self.saysNotThePrimary) { stale = true }
            request.continuation.resume(returning: values)
        }
        // Through Sentinel, a primary that became a replica (or one still loading) is left: the
        // next command asks the sentinels again. Its callers got the error reply.
        if stale { disconnect() }
    }

    /// Whether an error reply says this server cannot take writes now: a demoted primary
    /// (READONLY, also inside a script's error), one loading its data, or one without its primary.
    static func saysNotThePrimary(_ value: RedisValue) -> Bool {
        guard let message = value.errorMessage else { return false }
        return message.hasPrefix("READONLY") || message.hasPrefix("LOADING") || message.hasPrefix("MASTERDOWN")
            || message.contains("-READONLY") || message.contains("READONLY You can't write")
    }

    private func connected() throws -> UnsafeMutablePointer<redisContext> {
        if let context, !Hiredis.peerHasClosed(context) { return context }
        try connect()
        return context!
    }

    /// Connects, authenticates and selects the database. On success the backoff resets.
    private func connect() throws {
        disconnect()
        context = try Hiredis.open(configuration)
        everConnected = true
        reconnectDelay = .milliseconds(10)
    }

    private func disconnect() {
        if let context { redisFree(context) }
        context = nil
    }

    private func setTimeout(_ ctx: UnsafeMutablePointer<redisContext>, _ duration: Duration) {
        redisSetTimeout(ctx, Hiredis.timeval(duration))
    }

    // MARK: - hiredis glue
}
