import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// A raw TCP (or TLS) server on loopback that answers each HTTP request with scripted bytes, for
/// tests of what the provider client does with whatever a server sends: well-formed answers of
/// each framing, garbage, oversized heads, closes mid-answer, answers to no request, slow drips.
/// It frames requests itself (head up to a blank line, then Content-Length bytes) and counts
/// connections and requests.
final class RawHTTPServer: Sendable {
    enum Step: Sendable {
        case send([UInt8])
        case wait(TimeAmount)
        case close

        static func send(_ text: String) -> Step { .send(Array(text.utf8)) }

        /// `bytes` one at a time, `every` apart.
        static func drip(_ bytes: [UInt8], every: TimeAmount) -> [Step] {
            bytes.flatMap { [Step.send([$0]), .wait(every)] }
        }
    }

    /// What to do for request `request` (0, 1, … on its connection) of connection `connection`
    /// (0, 1, … in order of acceptance).
    typealias Script = @Sendable (_ connection: Int, _ request: Int) -> [Step]

    struct Stats: Sendable {
        var connections = 0
        var requests = 0
        var open = 0
        var maxOpen = 0
        var closed = 0
        /// Each request's bytes, in arrival order.
        var received: [[UInt8]] = []
    }

    let channel: any Channel
    let port: Int
    let stats = Mutex(Stats())

    private init(channel: any Channel) {
        self.channel = channel
        port = channel.localAddress?.port ?? 0
    }

    static func start(tls: NIOSSLContext? = nil, onAccept: [Step] = [], script: @escaping Script) async throws -> RawHTTPServer {
        let box = StatsBox()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.addHandler(Connection(box: box, onAccept: onAccept, script: script))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = RawHTTPServer(channel: channel)
        box.server.withLock { $0 = server }
        return server
    }

    func snapshot() -> Stats { stats.withLock { $0 } }

    func stop() async {
        try? await channel.close()
    }

    var base: String { "http://127.0.0.1:\(port)" }

    /// Lets the connections reach the server's stats (the server is made after its bootstrap).
    final class StatsBox: Sendable {
        let server = Mutex<RawHTTPServer?>(nil)
        func update(_ body: (inout Stats) -> Void) {
            server.withLock { server in server?.stats.withLock { body(&$0) } }
        }
    }

    /// One accepted connection. `@unchecked Sendable`: its state is touched only on its event loop.
    final class Connection: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let box: StatsBox
        let onAccept: [Step]
        let script: Script
        var index = 0
        var requests = 0
        var buffer: [UInt8] = []
        var context: ChannelHandlerContext?
        var queue: [Step] = []
        var running = false

        init(box: StatsBox, onAccept: [Step], script: @escaping Script) {
            self.box = box
            self.onAccept = onAccept
            self.script = script
        }

        func channelActive(context: ChannelHandlerContext) {
            self.context = context
            box.update { stats in
                index = stats.connections
                stats.connections += 1
                stats.open += 1
                stats.maxOpen = max(stats.maxOpen, stats.open)
            }
            enqueue(onAccept)
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            box.update { stats in
                stats.open -= 1
                stats.closed += 1
            }
            self.context = nil
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data)
            buffer.append(contentsOf: bytes.readableBytesView)
            while let request = nextRequest() {
                let number = requests
                requests += 1
                box.update { stats in
                    stats.requests += 1
                    stats.received.append(request)
                }
                enqueue(script(index, number))
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        /// A whole request taken off the front of `buffer`, if one is there.
        private func nextRequest() -> [UInt8]? {
            let end = Array("\r\n\r\n".utf8)
            guard buffer.count >= 4, let headEnd = (0...(buffer.count - 4)).first(where: { Array(buffer[$0..<$0 + 4]) == end }) else { return nil }
            let head = String(decoding: buffer[..<headEnd], as: UTF8.self).lowercased()
            var length = 0
            for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                length = Int(line.dropFirst("content-length:".count).trimmingPrefix(" ")) ?? 0
            }
            let total = headEnd + 4 + length
            guard buffer.count >= total else { return nil }
            let request = Array(buffer[..<total])
            buffer.removeFirst(total)
            return request
        }

        private func enqueue(_ steps: [Step]) {
            queue.append(contentsOf: steps)
            if !running { runNext() }
        }

        private func runNext() {
            guard let context, !queue.isEmpty else {
                running = false
                return
            }
            running = true
            switch queue.removeFirst() {
            case .send(let bytes):
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: nil)
                runNext()
            case .wait(let time):
                context.eventLoop.scheduleTask(in: time) { self.runNext() }
            case .close:
                queue.removeAll()
                running = false
                context.close(promise: nil)
            }
        }
    }
}

extension RawHTTPServer.Step {
    /// A 200 with a Content-Length body.
    static func ok(_ body: String = "ok", headers: String = "") -> RawHTTPServer.Step {
        .send("HTTP/1.1 200 OK\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)")
    }
}
