import CHiredis
import Foundation
import SluiceCore
import Synchronization

/// A pattern subscription (PSUBSCRIBE) on a connection and thread of its own.
///
/// Messages are handed to `onMessage` on the subscriber's thread, so the handler must be quick.
/// After every (re)subscription `onSubscribed` runs: messages sent while the subscriber was
/// disconnected are lost, so a user re-checks whatever it was waiting for.
public final class RedisSubscriber: @unchecked Sendable {
    // @unchecked: `context` is used only by the subscriber's thread; `closed` and `socket` are
    // atomics, read by `close()` from other threads to unblock that thread.

    public typealias MessageHandler = @Sendable (_ channel: String, _ payload: [UInt8]) -> Void

    private let configuration: RedisConfiguration
    private let patterns: [String]
    private let onMessage: MessageHandler
    private let onSubscribed: @Sendable () -> Void
    private let closed = Atomic<Bool>(false)
    private let socket = Atomic<Int32>(-1)

    /// Subscribes to `patterns` at once, on a new thread, and keeps resubscribing after a lost
    /// connection until `close()`.
    public init(
        configuration: RedisConfiguration, patterns: [String],
        onMessage: @escaping MessageHandler, onSubscribed: @escaping @Sendable () -> Void
    ) {
        self.configuration = configuration
        self.patterns = patterns
        self.onMessage = onMessage
        self.onSubscribed = onSubscribed
        // The thread keeps the subscriber alive until `close()` ends it.
        let thread = Thread { self.run() }
        thread.name = "sluice-redis-subscriber"
        thread.start()
    }

    /// Ends the subscription and its thread.
    public func close() {
        closed.store(true, ordering: .sequentiallyConsistent)
        let fd = socket.load(ordering: .sequentiallyConsistent)
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func run() {
        var delay = Duration.milliseconds(10)
        while !closed.load(ordering: .sequentiallyConsistent) {
            var noTimeout = configuration
            noTimeout.commandTimeout = .zero  // a subscriber waits for messages indefinitely
            guard let ctx = try? Hiredis.open(noTimeout) else {
                Thread.sleep(forTimeInterval: delay.seconds)
                delay = min(delay * 2, .seconds(1))
                continue
            }
            socket.store(ctx.pointee.fd, ordering: .sequentiallyConsistent)
            if closed.load(ordering: .sequentiallyConsistent) {
                redisFree(ctx)
                break
            }
            delay = .milliseconds(10)
            Hiredis.append(RedisCommand("PSUBSCRIBE", patterns), to: ctx)
            var confirmed = 0
            while let reply = Hiredis.readReply(ctx) {
                guard let parts = reply.array, let kind = parts.first?.string else { continue }
                if kind == "psubscribe" {
                    confirmed += 1
                    if confirmed == patterns.count { onSubscribed() }
                } else if kind == "pmessage", parts.count == 4, let channel = parts[2].string, let payload = parts[3].bytes {
                    onMessage(channel, payload)
                }
            }
            socket.store(-1, ordering: .sequentiallyConsistent)
            redisFree(ctx)
        }
    }
}
