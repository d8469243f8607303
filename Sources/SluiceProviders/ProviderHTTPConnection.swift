import NIOCore
import NIOHTTP1
import NIOSSL

/// One keep-alive connection of a `ProviderHTTPPool`: the last handler of its pipeline
/// (`[TLS] → ProviderHTTPRequestWriter → HTTPResponseDecoder → this`). It runs one call at a time:
/// writes the request, gathers the answer (head, body up to the cap), and ends the call by its
/// deadline, at a cancellation, or when the connection fails, closing the connection in each of
/// those cases.
///
/// `@unchecked Sendable`: the pool and the calling task hold it across threads, but every
/// mutable property is read and written only on `eventLoop` (each entry point hops there first).
final class ProviderHTTPConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    /// What the response decoder is told of each request: only the method matters to it (a HEAD's
    /// answer has no body), and that it expects one answer.
    private static let postHead = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/")

    let pool: ProviderHTTPPool
    let eventLoop: any EventLoop
    /// The configured cap on an answer's body.
    private let defaultMaxBodyBytes: Int
    /// The current call's cap (its own, or the configured one). On `eventLoop` only.
    private var maxBodyBytes: Int

    // On `eventLoop` only.
    private var context: ChannelHandlerContext?
    /// The call running, if any.
    private var promise: EventLoopPromise<ProviderResponse>?
    private var deadlineTimer: Scheduled<Void>?
    private var head: HTTPResponseHead?
    private var body: ByteBuffer?
    /// Whether any part of the current call's answer came.
    private var answered = false
    /// Set once the connection is closing or closed: it takes no call again.
    private var closed = false
    /// What closed it before its first call (a TLS handshake that failed before the first
    /// request was written, say): the error that call gets. A connection that did serve a call
    /// and then broke while idle fails its next call as closed before an answer (retried once).
    private var closedBy: ProviderHTTPError?
    /// Whether a call has started on it.
    private var used = false
    private var idleTimer: Scheduled<Void>?

    init(pool: ProviderHTTPPool, eventLoop: any EventLoop) {
        self.pool = pool
        self.eventLoop = eventLoop
        defaultMaxBodyBytes = pool.configuration.maxBodyBytes
        maxBodyBytes = defaultMaxBodyBytes
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Sends `bytes` (a whole request) and returns the whole answer, its body at most
    /// `maxBodyBytes` (the configured cap when nil). Any thread.
    func execute(_ bytes: ByteBuffer, deadline: NIODeadline, maxBodyBytes: Int? = nil) async throws -> ProviderResponse {
        let promise = eventLoop.makePromise(of: ProviderResponse.self)
        let cap = maxBodyBytes ?? defaultMaxBodyBytes
        if eventLoop.inEventLoop {
            // A call running on its connection's loop (the pool prefers those): written at once.
            start(bytes, deadline: deadline, cap: cap, promise: promise)
        } else {
            eventLoop.execute { self.start(bytes, deadline: deadline, cap: cap, promise: promise) }
        }
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            // Run or queued after `start` on the same loop, so it finds its call (or the call has ended).
            self.eventLoop.execute { self.fail(CancellationError(), ifCurrent: promise) }
        }
    }

    private func start(_ bytes: ByteBuffer, deadline: NIODeadline, cap: Int, promise: EventLoopPromise<ProviderResponse>) {
        idleTimer?.cancel()
        idleTimer = nil
        guard self.promise == nil else {
            // The pool leases a connection to one call at a time; this cannot happen.
            assertionFailure("a second call on a busy connection")
            promise.fail(ProviderHTTPError.closedBeforeResponse)
            return
        }
        guard !closed, let context, context.channel.isActive else {
            // Closed after it was leased (the server closed an idle connection just now).
            closed = true
            pool.release(self, reusable: false)
            promise.fail(closedBy ?? ProviderHTTPError.closedBeforeResponse)
            return
        }
        self.promise = promise
        maxBodyBytes = cap
        used = true
        answered = false
        deadlineTimer = eventLoop.scheduleTask(deadline: deadline) { self.fail(ProviderHTTPError.timeout, ifCurrent: promise) }
        // The head only tells the decoder a request went out; the writer below it swallows it,
        // and the whole request leaves as the one buffer.
        context.write(wrapOutboundOut(.head(Self.postHead)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard promise != nil else {
            // Nothing asked for this (the decoder refuses an answer to no request before it gets
            // here; this is a stray part after a failed call).
            close()
            return
        }
        answered = true
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(let part):
            let size = (body?.readableBytes ?? 0) + part.readableBytes
            guard size <= maxBodyBytes else {
                fail(ProviderHTTPError.bodyTooLarge(limit: maxBodyBytes), ifCurrent: nil)
                return
            }
            if body == nil {
                body = part
            } else {
                body!.writeImmutableBuffer(part)
            }
        case .end:
            finish()
        }
    }

    /// The whole answer came: the call succeeds, and the connection goes back to the pool if
    /// both sides keep it alive (not `Connection: close`, not an answer read until close).
    private func finish() {
        guard let promise, let head else {
            fail(ProviderHTTPError.invalidResponse("an answer without a head"), ifCurrent: nil)
            return
        }
        let response = ProviderResponse(
            status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) },
            body: body.map { Array($0.readableBytesView) } ?? [])
        clearCall()
        let reusable = head.isKeepAlive && head.status != .switchingProtocols && !closed && context?.channel.isActive == true
        if !reusable { closed = true }
        pool.release(self, reusable: reusable)
        if !reusable { context?.close(promise: nil) }
        promise.succeed(response)
    }

    /// Ends the current call with `error` (only if it is `promise`'s, when one is given) and
    /// closes the connection.
    private func fail(_ error: any Error, ifCurrent expected: EventLoopPromise<ProviderResponse>?) {
        guard let promise, expected == nil || expected!.futureResult === promise.futureResult else { return }
        clearCall()
        closed = true
        pool.release(self, reusable: false)
        context?.close(promise: nil)
        promise.fail(error)
    }

    private func clearCall() {
        deadlineTimer?.cancel()
        deadlineTimer = nil
        promise = nil
        head = nil
        body = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let failure: ProviderHTTPError =
            switch error {
            case is HTTPParserError, is NIOHTTPDecoderError, is ByteToMessageDecoderError:
                .invalidResponse(String(describing: error))
            case is NIOSSLError, is BoringSSLError:
                .tls(String(describing: error))
            default:
                answered ? .closedMidResponse : .closedBeforeResponse
            }
        guard promise != nil else {
            if !used && closedBy == nil { closedBy = failure }
            close()
            return
        }
        fail(failure, ifCurrent: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if promise != nil {
            fail(answered ? ProviderHTTPError.closedMidResponse : ProviderHTTPError.closedBeforeResponse, ifCurrent: nil)
        } else if !closed {
            closed = true
            idleTimer?.cancel()
            idleTimer = nil
            pool.closedWhileIdle(self)
        }
        context.fireChannelInactive()
    }

    /// Idle from now: closed after `timeout` unless a call takes it first. On `eventLoop`.
    func park(for timeout: TimeAmount) {
        idleTimer = eventLoop.scheduleTask(in: timeout) {
            self.idleTimer = nil
            if self.pool.takeIfIdle(self) { self.close() }
        }
    }

    /// Closes the connection. Any thread.
    func close() {
        if eventLoop.inEventLoop {
            closed = true
            idleTimer?.cancel()
            idleTimer = nil
            context?.close(promise: nil)
        } else {
            eventLoop.execute { self.close() }
        }
    }
}

/// Lets the whole request leave as the one buffer written after its head: the head (written
/// only so that the response decoder above it counts the request) is dropped here. Stateless.
final class ProviderHTTPRequestWriter: ChannelOutboundHandler, Sendable {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = ByteBuffer

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head, .end:
            promise?.succeed()
        case .body(.byteBuffer(let bytes)):
            context.write(wrapOutboundOut(bytes), promise: promise)
        case .body(.fileRegion):
            promise?.fail(ChannelError.operationUnsupported)
        }
    }
}
