import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceCore

/// What one open-loop run sends: `body` POSTed to `url` at `rate` requests/s for `seconds`
/// (after `warmup` seconds that are sent alike but not recorded), over up to `connections`
/// keep-alive connections.
struct LoadSettings: Sendable {
    var url: String
    var rate: Double
    var seconds: Double
    var warmup: Double = 1
    var connections: Int = 64
    var body: [UInt8]
    var headers: [(String, String)] = []
    var label: String = "load"
    /// How long to wait, once the last request was due, for the ones still queued or in flight.
    var drain: Double = 10
}

/// What a run measured. Latencies are milliseconds from each request's *scheduled* send time to
/// its response's end (wrk2's definition): a request that waited for a free connection counts
/// its wait, so a server that falls behind shows it instead of slowing the generator down.
struct LoadResult: Sendable {
    var settings: LoadSettings
    var scheduled = 0
    var succeeded = 0
    var non2xx = 0
    var transportErrors = 0
    var unfinished = 0
    var statuses: [UInt: Int] = [:]
    var elapsed = 0.0
    var connectionsUsed = 0
    var sortedLatencies: [Double] = []

    var achievedRate: Double { elapsed > 0 ? Double(succeeded) / elapsed : 0 }

    func percentile(_ p: Double) -> Double {
        guard !sortedLatencies.isEmpty else { return .nan }
        let rank = Int((p * Double(sortedLatencies.count)).rounded(.up)) - 1
        return sortedLatencies[min(sortedLatencies.count - 1, max(0, rank))]
    }

    func report() -> String {
        let codes = statuses.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        let s = settings
        func ms(_ value: Double) -> String { String(format: "%.3f", value) }
        let (p50, p90, p99, p999, worst) = (
            ms(percentile(0.5)), ms(percentile(0.9)), ms(percentile(0.99)), ms(percentile(0.999)), ms(sortedLatencies.last ?? .nan)
        )
        let rate = String(format: "%.0f", s.rate)
        let achieved = String(format: "%.1f", achievedRate)
        return """
            \(s.label): \(rate) req/s offered for \(s.seconds) s (+\(s.warmup) s warm-up) over up to \(s.connections) connections (\(connectionsUsed) used) → \(s.url)
              sent \(scheduled): 2xx \(succeeded), non-2xx \(non2xx), transport errors \(transportErrors), unfinished \(unfinished); achieved \(achieved)/s (2xx)
              latency from scheduled send (ms): p50 \(p50)  p90 \(p90)  p99 \(p99)  p99.9 \(p999)  max \(worst)
            RESULT label=\(s.label) rate=\(rate) achieved=\(achieved) ok=\(succeeded) non2xx=\(non2xx) errors=\(transportErrors) \
            unfinished=\(unfinished) p50_ms=\(p50) p90_ms=\(p90) p99_ms=\(p99) p999_ms=\(p999) max_ms=\(worst) codes=\(codes.isEmpty ? "none" : codes)
            """
    }
}

/// An open-loop, constant-rate HTTP/1.1 load generator on one SwiftNIO event loop (no
/// AsyncHTTPClient: the generator must cost far less than what it measures). Request `i` is due
/// at `start + i / rate`; a timer fires at each due time and hands every due request to a free
/// connection (the most recently freed first, so a light load keeps few connections warm); when
/// none is free the request waits in order, and its latency still counts from its due time.
enum LoadGenerator {
    static func run(_ settings: LoadSettings) async throws -> LoadResult {
        guard let target = URL(string: settings.url), target.scheme == "http", let host = target.host else {
            throw BenchFailure("--load needs an http:// URL, got \(settings.url)")
        }
        guard settings.rate > 0, settings.rate <= 1_000_000, settings.seconds > 0, settings.seconds <= 3_600,
            settings.warmup >= 0, settings.warmup <= 600, settings.drain >= 0, settings.drain <= 3_600,
            (1...10_000).contains(settings.connections)
        else { throw BenchFailure("--load-rate, --load-seconds, --load-warmup, --load-drain or --load-connections out of range") }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let path = target.path.isEmpty ? "/" : target.path + (target.query.map { "?" + $0 } ?? "")
        let port = target.port ?? 80
        let outcome: Result<LoadResult, any Error>
        do {
            outcome = .success(
                try await loop.flatSubmit {
                    LoadRun(loop: loop, settings: settings, host: host, port: port, path: path).start()
                }.get())
        } catch {
            outcome = .failure(error)
        }
        try await group.shutdownGracefully()
        return try outcome.get()
    }
}

/// One run's state. Every property is touched only on `loop` (its connections' handlers call in
/// on the same loop), which is why it may be `@unchecked Sendable`.
private final class LoadRun: @unchecked Sendable {
    let loop: any EventLoop
    let settings: LoadSettings
    let host: String
    let port: Int
    let head: HTTPRequestHead
    let body: ByteBuffer
    let total: Int
    let recorded: Int  // requests with index >= total - recorded are measured; the rest are warm-up
    let interval: Double  // nanoseconds between requests

    var startTime = NIODeadline.now()
    var due = 0  // requests whose time has come
    var sent = 0  // requests handed to a connection (in order)
    var finished = 0  // requests answered or failed
    var idle: [LoadConnection] = []
    var opened = 0
    var used = Set<ObjectIdentifier>()
    var latencies: [Double] = []
    var result: LoadResult
    var promise: EventLoopPromise<LoadResult>
    var drainDeadline: Scheduled<Void>?
    var done = false

    init(loop: any EventLoop, settings: LoadSettings, host: String, port: Int, path: String) {
        self.loop = loop
        self.settings = settings
        self.host = host
        self.port = port
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: port == 80 ? host : "\(host):\(port)")
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(settings.body.count))
        for (name, value) in settings.headers { headers.replaceOrAdd(name: name, value: value) }
        head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: headers)
        body = ByteBuffer(bytes: settings.body)
        recorded = Int((settings.rate * settings.seconds).rounded())
        total = recorded + Int((settings.rate * settings.warmup).rounded())
        interval = 1e9 / settings.rate
        latencies.reserveCapacity(recorded)
        result = LoadResult(settings: settings)
        promise = loop.makePromise()
    }

    func start() -> EventLoopFuture<LoadResult> {
        // Every connection is opened before the clock starts, so connecting is not measured.
        let connects = (0..<settings.connections).map { _ in connect() }
        EventLoopFuture.whenAllComplete(connects, on: loop).whenComplete { _ in
            guard !self.idle.isEmpty else {
                self.promise.fail(BenchFailure("\(self.settings.label): could not connect to \(self.host):\(self.port)"))
                return
            }
            self.startTime = .now() + .milliseconds(20)
            self.loop.scheduleTask(deadline: self.startTime) { self.tick() }
        }
        return promise.futureResult
    }

    /// When request `index` is due: `index` intervals after the start, through the bounded
    /// conversion (the rate and lengths are checked in `run`, so the clamp never bites).
    func dueTime(_ index: Int) -> NIODeadline {
        let offset = Bounded.int((Double(index) * interval).rounded(), in: 0...Self.longestOffset) ?? Self.longestOffset
        return startTime + .nanoseconds(Int64(offset))
    }

    /// Past any run `run` allows (an hour, a warm-up of ten minutes): two hours, in nanoseconds.
    static let longestOffset = 7_200_000_000_000

    func connect() -> EventLoopFuture<Void> {
        let run = self
        return ClientBootstrap(group: loop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(LoadConnection(run: run))
                }
            }
            .connect(host: host, port: port)
            .flatMapThrowing { channel in
                let connection = try channel.pipeline.syncOperations.handler(type: LoadConnection.self)
                run.opened += 1
                run.idle.append(connection)
                run.dispatch()
            }
    }

    /// Marks every request whose time has come as due, sends what it can, and sleeps until the next.
    func tick() {
        guard !done else { return }
        let now = NIODeadline.now()
        while due < total && dueTime(due) <= now { due += 1 }
        dispatch()
        if due < total {
            loop.scheduleTask(deadline: dueTime(due)) { self.tick() }
        } else if drainDeadline == nil {
            drainDeadline = loop.scheduleTask(in: .nanoseconds(Int64(settings.drain * 1e9))) { self.finish() }
            finishIfDrained()
        }
    }

    func dispatch() {
        while sent < due, let connection = idle.popLast() {
            used.insert(ObjectIdentifier(connection))
            connection.send(index: sent, head: head, body: body)
            sent += 1
        }
    }

    func answered(_ connection: LoadConnection, index: Int, status: UInt, keepAlive: Bool) {
        finished += 1
        if index >= total - recorded {
            result.statuses[status, default: 0] += 1
            if (200..<300).contains(status) {
                result.succeeded += 1
                latencies.append(Double((NIODeadline.now() - dueTime(index)).nanoseconds) / 1e6)
            } else {
                result.non2xx += 1
            }
        }
        if keepAlive {
            idle.append(connection)
            dispatch()
        }
        finishIfDrained()
    }

    /// A connection closed (a transport error, or the server's close): the request it carried, if
    /// any, failed; a new connection takes its place.
    func lost(_ connection: LoadConnection, index: Int?) {
        if let index {
            finished += 1
            if index >= total - recorded { result.transportErrors += 1 }
        }
        idle.removeAll { $0 === connection }
        guard !done else { return }
        reconnect(after: .milliseconds(index == nil ? 0 : 50))
        finishIfDrained()
    }

    /// Opens a replacement connection, retrying every 100 ms while the server refuses.
    func reconnect(after delay: TimeAmount) {
        loop.scheduleTask(in: delay) {
            guard !self.done else { return }
            self.connect().whenFailure { _ in self.reconnect(after: .milliseconds(100)) }
        }
    }

    func finishIfDrained() {
        if due == total && finished == total { finish() }
    }

    func finish() {
        guard !done else { return }
        done = true
        drainDeadline?.cancel()
        let lastDue = dueTime(total)
        let now = NIODeadline.now()
        // Requests still waiting or in flight at the drain deadline count as unfinished, and the
        // run lasted until its last due time or the last answer, whichever came later.
        result.scheduled = recorded
        result.unfinished = max(0, result.scheduled - result.succeeded - result.non2xx - result.transportErrors)
        let measuredStart = dueTime(total - recorded)
        let end = result.unfinished > 0 ? lastDue : max(lastDue, now)
        result.elapsed = Double((end - measuredStart).nanoseconds) / 1e9
        result.connectionsUsed = used.count
        latencies.sort()
        result.sortedLatencies = latencies
        promise.succeed(result)
    }
}

/// One keep-alive connection's handler: writes a request, reads the answer, reports both to the run.
private final class LoadConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let run: LoadRun
    var context: ChannelHandlerContext?
    var inFlight: Int?
    var status: UInt = 0
    var keepAlive = true

    init(run: LoadRun) { self.run = run }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func send(index: Int, head: HTTPRequestHead, body: ByteBuffer) {
        guard let context else { return }
        inFlight = index
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status.code
            keepAlive = head.isKeepAlive
        case .body:
            break
        case .end:
            guard let index = inFlight else { return }
            inFlight = nil
            run.answered(self, index: index, status: status, keepAlive: keepAlive)
            if !keepAlive { context.close(promise: nil) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let index = inFlight
        inFlight = nil
        self.context = nil
        run.lost(self, index: index)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
