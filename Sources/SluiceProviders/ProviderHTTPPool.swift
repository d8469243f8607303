import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// The keep-alive connections to one (scheme, host, port): grown on demand up to
/// `connectionsPerHost`, idle ones reused (the most recently used first, so the others can idle
/// out), calls beyond the limit served first come first served.
///
/// Invariant: `open` counts every connection that holds a slot (connecting, running a call, or
/// idle). A leased connection gives its slot back exactly once, when its call ends unusable
/// (`release(_:reusable: false)`); an idle one, when it is taken out of the idle set because it
/// closed or idled out. A freed slot passes straight to the first waiter, if any.
final class ProviderHTTPPool: Sendable {
    /// What a caller gets: a connection to reuse, or a slot to open a new one in.
    enum Lease: Sendable {
        case idle(ProviderHTTPConnection)
        case new
    }

    struct Waiter: Sendable {
        var continuation: CheckedContinuation<Lease, any Error>
        var timer: Scheduled<Void>?

        /// Ends the wait: its deadline's timer cancelled, the caller resumed.
        func end(with result: Result<Lease, any Error>) {
            timer?.cancel()
            continuation.resume(with: result)
        }
    }

    struct State: ~Copyable {
        var open = 0
        /// Idle connections, most recent last. It may hold connections that have since left the
        /// idle set (closed while idle); they are skipped, and swept out when they pile up.
        var idle: [ProviderHTTPConnection] = []
        var idleIDs: Set<ObjectIdentifier> = []
        var waiters: [UInt64: Waiter] = [:]
        /// The waiters' ids in arrival order (abandoned ids are skipped).
        var order = CircularBuffer<UInt64>()
        var nextID: UInt64 = 0
        var closed = false

        mutating func take(limit: Int) -> Lease? {
            guard waiters.isEmpty else { return nil }
            // A caller on an event loop (a lane worker's call runs on one) gets a connection of
            // that loop if one of the most recently idle is: no thread hop for its write or its
            // answer.
            if let index = idle.indices.reversed().prefix(16).first(where: { idle[$0].eventLoop.inEventLoop }),
                idleIDs.remove(ObjectIdentifier(idle[index])) != nil
            {
                return .idle(idle.remove(at: index))
            }
            while let connection = idle.popLast() {
                if idleIDs.remove(ObjectIdentifier(connection)) != nil { return .idle(connection) }
            }
            if open < limit {
                open += 1
                return .new
            }
            return nil
        }

        mutating func nextWaiter() -> Waiter? {
            while !order.isEmpty {
                if let waiter = waiters.removeValue(forKey: order.removeFirst()) { return waiter }
            }
            return nil
        }
    }

    let target: ProviderHTTPTarget
    let configuration: ProviderHTTPClient.Configuration
    let group: any EventLoopGroup
    let tls: NIOSSLContext?
    private let state = Mutex(State())

    init(target: ProviderHTTPTarget, configuration: ProviderHTTPClient.Configuration, group: any EventLoopGroup, tls: NIOSSLContext?) {
        self.target = target
        self.configuration = configuration
        self.group = group
        self.tls = tls
    }

    /// An idle connection, or a slot for a new one, if the host is under its limit and no one
    /// waits. Synchronous, so that the common case puts no async frame on the calling task.
    func tryAcquire() throws(ProviderHTTPError) -> Lease? {
        let limit = configuration.connectionsPerHost
        return try state.withLock { state throws(ProviderHTTPError) -> Lease? in
            guard !state.closed else { throw .shutDown }
            return state.take(limit: limit)
        }
    }

    /// Waits its turn (until `deadline`) for an idle connection or a slot, first come first
    /// served, when the host is at its limit.
    func acquire(deadline: NIODeadline) async throws -> Lease {
        let limit = configuration.connectionsPerHost
        let id = state.withLock { state in
            state.nextID &+= 1
            return state.nextID
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Lease, any Error>) in
                let now: Result<Lease, any Error>? = state.withLock { state in
                    if state.closed { return .failure(ProviderHTTPError.shutDown) }
                    // A cancellation that came before this waiter was listed found nothing to end.
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if let lease = state.take(limit: limit) { return .success(lease) }
                    state.waiters[id] = Waiter(continuation: continuation, timer: nil)
                    state.order.append(id)
                    return nil
                }
                if let now {
                    continuation.resume(with: now)
                    return
                }
                let timer = group.any().scheduleTask(deadline: deadline) { self.abandon(id, ProviderHTTPError.timeout) }
                let kept = state.withLock { state in
                    guard state.waiters[id] != nil else { return false }
                    state.waiters[id]!.timer = timer
                    return true
                }
                if !kept { timer.cancel() }
            }
        } onCancel: {
            abandon(id, CancellationError())
        }
    }

    /// Ends a wait (cancelled, or past its deadline), if it is still waiting.
    private func abandon(_ id: UInt64, _ error: any Error) {
        guard let waiter = state.withLock({ $0.waiters.removeValue(forKey: id) }) else { return }
        waiter.end(with: .failure(error))
    }

    /// Opens a connection in a slot `acquire` gave; the slot is given back if none is made.
    func connect(deadline: NIODeadline) async throws -> ProviderHTTPConnection {
        let left = deadline - .now()
        let connectTimeout = min(ProviderHTTPClient.timeAmount(configuration.connectTimeout), max(left, .milliseconds(1)))
        let target = self.target
        let tls = self.tls
        // Each channel's handler as it was made, by channel: looked up in the pipeline instead, it
        // is gone when the channel closed before the connect's future ran (a TLS handshake refused
        // quickly on a loaded machine), and the call got `notFound` instead of the TLS error the
        // handler keeps for it (`closedBy`).
        let made = MadeConnections()
        // On the caller's event loop when it runs on one (`any()`), else the next.
        let bootstrap = ClientBootstrap(group: group.any())
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            // A connection keeps its last receive buffer for the next read: 1 KiB to start
            // (NIO's default is 2 KiB), grown for larger answers, is what most answers need and
            // halves what each of thousands of waiting connections holds.
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 256, initial: 1024, maximum: 65_536))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handlers = channel.pipeline.syncOperations
                    if let tls {
                        try handlers.addHandler(NIOSSLClientHandler(context: tls, serverHostname: target.hostIsIPAddress ? nil : target.host))
                    }
                    try handlers.addHandler(ProviderHTTPRequestWriter())
                    try handlers.addHandler(ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
                    let connection = ProviderHTTPConnection(pool: self, eventLoop: channel.eventLoop)
                    try handlers.addHandler(connection)
                    made.handlers.withLock { $0[ObjectIdentifier(channel)] = connection }
                }
            }
        // An address is connected to at once; a name goes through NIO's resolver and Happy Eyeballs.
        let channel =
            if let address = try? SocketAddress(ipAddress: target.host, port: target.port) {
                bootstrap.connect(to: address)
            } else {
                bootstrap.connect(host: target.host, port: target.port)
            }
        let connecting = channel.flatMapThrowing { channel in
            // Happy Eyeballs may have made channels that lost: only the winner's handler is kept.
            guard let connection = made.handlers.withLock({ made in defer { made = [:] }; return made[ObjectIdentifier(channel)] }) else {
                throw ChannelPipelineError.notFound
            }
            return connection
        }
        do {
            let connection = try await withTaskCancellationHandler {
                try await connecting.get()
            } onCancel: {
                connecting.whenSuccess { $0.close() }
            }
            if Task.isCancelled {
                connection.close()
                giveBackSlot()
                throw CancellationError()
            }
            return connection
        } catch ChannelError.connectTimeout {
            giveBackSlot()
            throw ProviderHTTPError.connectTimeout
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            giveBackSlot()
            throw ProviderHTTPError.connectFailed(String(describing: error))
        }
    }

    /// A slot whose connection was never made: to the first waiter, or free.
    private func giveBackSlot() {
        let waiter = state.withLock { state -> Waiter? in
            if let waiter = state.nextWaiter() { return waiter }
            state.open -= 1
            return nil
        }
        waiter?.end(with: .success(.new))
    }

    /// A leased connection's call ended (called on its event loop). A reusable one goes to the
    /// first waiter or becomes idle; an unusable one (closing) frees its slot.
    func release(_ connection: ProviderHTTPConnection, reusable: Bool) {
        enum Next {
            case resume(Waiter, Lease)
            case park
            case close
            case nothing
        }
        let next = state.withLock { state -> Next in
            if state.closed {
                state.open -= 1
                return reusable ? .close : .nothing
            }
            if let waiter = state.nextWaiter() { return .resume(waiter, reusable ? .idle(connection) : .new) }
            if reusable {
                state.idle.append(connection)
                state.idleIDs.insert(ObjectIdentifier(connection))
                return .park
            }
            state.open -= 1
            return .nothing
        }
        switch next {
        case .resume(let waiter, let lease): waiter.end(with: .success(lease))
        case .park: connection.park(for: ProviderHTTPClient.timeAmount(configuration.idleTimeout))
        case .close: connection.close()
        case .nothing: break
        }
    }

    /// Takes `connection` out of the idle set, if it is there (its idle time ran out): the
    /// caller then closes it.
    func takeIfIdle(_ connection: ProviderHTTPConnection) -> Bool {
        state.withLock { state in
            guard state.idleIDs.remove(ObjectIdentifier(connection)) != nil else { return false }
            state.open -= 1
            state.sweep()
            return true
        }
    }

    /// An idle connection closed (the server closed it, or sent what no request asked for): its
    /// slot goes to the first waiter, or is freed.
    func closedWhileIdle(_ connection: ProviderHTTPConnection) {
        let wasIdle = state.withLock { state in
            guard state.idleIDs.remove(ObjectIdentifier(connection)) != nil else { return false }
            state.sweep()
            return true
        }
        if wasIdle { giveBackSlot() }
    }

    /// Fails the waiters and closes the idle connections; a call still running closes its
    /// connection when it ends.
    func shutdown() {
        let (waiters, idle) = state.withLock { state in
            state.closed = true
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            state.order.removeAll()
            let idle = state.idle.filter { state.idleIDs.contains(ObjectIdentifier($0)) }
            state.open -= idle.count
            state.idle.removeAll()
            state.idleIDs.removeAll()
            return (waiters, idle)
        }
        for waiter in waiters { waiter.end(with: .failure(ProviderHTTPError.shutDown)) }
        for connection in idle { connection.close() }
    }
}

extension ProviderHTTPPool.State {
    /// Drops the connections that left the idle set from the idle stack once they outnumber
    /// the ones still in it.
    mutating func sweep() {
        guard idle.count > 2 * idleIDs.count + 16 else { return }
        let kept = idleIDs
        idle.removeAll { !kept.contains(ObjectIdentifier($0)) }
    }
}

/// The handlers one `connect` made, by channel (see `ProviderHTTPPool.connect`).
private final class MadeConnections: Sendable {
    let handlers = Mutex<[ObjectIdentifier: ProviderHTTPConnection]>([:])
}
