import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose answer was written before its request's body had all arrived: a
/// 413 for an oversized body, a 401 for a bad key, a refused multipart boundary.
///
/// Hummingbird would keep such a connection and read the rest of the body to reach the next
/// request, or, when the request said `Connection: close` (Python's urllib does), stop reading
/// and never close: a client that writes its whole body before reading waited for its own
/// timeout. Here an early answer carries `Connection: close`. Once it is written, the output
/// is shut (a FIN after the answer), the rest of the body is read and dropped here for at most
/// `linger`, and the connection is closed as soon as the body ends. So a client that writes
/// first finishes writing and reads the answer; one still writing after `linger` gets a reset
/// on its next write (urllib3 then reads the answer already in its buffer). A response to a
/// request read in full is left alone.
final class EarlyAnswerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// How long the rest of a body is read and dropped after an early answer.
    let linger: TimeAmount
    /// Requests whose head, and whose end, have arrived; responses begun. Responses go in the
    /// order of their requests, so the one begun is early when its request's end has not come
    /// (a pipelined request's head behind a whole one does not make the first answer early).
    private var heads = 0
    private var ends = 0
    private var responses = 0
    /// The latest request's end has not arrived.
    private var requestOpen: Bool { ends < heads }
    /// The response being written answers early: the connection closes after it.
    private var answeringEarly = false
    /// The output is shut and the rest of the body is being dropped until this fires.
    private var lingering: Scheduled<Void>?

    init(linger: TimeAmount = .seconds(5)) {
        self.linger = linger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let lingering {
            // After an early answer: the body is dropped here, and its end (or anything past
            // it) closes the connection, with nothing left unread.
            if case .body = unwrapInboundIn(data) { return }
            lingering.cancel()
            self.lingering = nil
            context.close(promise: nil)
            return
        }
        switch unwrapInboundIn(data) {
        case .head: heads += 1
        case .body: break
        case .end: ends += 1
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Nothing above reads the dropped body: ask for more here, whatever their backpressure.
        if lingering != nil { context.read() }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head) where head.status.kind != .informational:
            responses += 1
            // This response's request is the `responses`-th; early when its end has not come.
            guard ends < responses else {
                context.write(data, promise: promise)
                return
            }
            answeringEarly = true
            head.headerFields[.connection] = "close"
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end where answeringEarly:
            answeringEarly = false
            let written = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(data, promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in
                if self.requestOpen {
                    context.close(mode: .output, promise: nil)
                    self.lingering = context.eventLoop.assumeIsolated().scheduleTask(in: self.linger) {
                        self.lingering = nil
                        context.close(promise: nil)
                    }
                    context.read()
                } else {
                    context.close(promise: nil)
                }
            }
            written.futureResult.cascade(to: promise)
        default:
            context.write(data, promise: promise)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        lingering?.cancel()
        lingering = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension EarlyAnswerHandler: Sendable {}
