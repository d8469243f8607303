import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// The provider path's HTTP/1.1 client, on SwiftNIO: keep-alive connections pooled per
/// (scheme, host, port), each request written as one buffer (head and body) with one
/// writeAndFlush, and the answer decoded by NIOHTTP1's `HTTPResponseDecoder` (llhttp) into status,
/// header pairs and body bytes.
///
/// Guarantees: at most `connectionsPerHost` connections to one host (calls beyond it wait their
/// turn, first come first served); a call ends by its deadline (the request's timeout, waiting
/// for a connection included), or at once when its task is cancelled, and then its connection is
/// closed; a refused connection fails the call at once; nothing a server sends can trap the
/// process (a malformed, oversized or unsolicited answer closes that connection and fails only
/// the call it was for).
public final class ProviderHTTPClient: Sendable {
    /// How the client connects and what it accepts.
    public struct Configuration: Sendable {
        /// The most connections open (or opening) to one host at a time.
        public var connectionsPerHost: Int
        /// How long a TCP (and TLS) connection may take to be established.
        public var connectTimeout: Duration
        /// How long an unused keep-alive connection stays open.
        public var idleTimeout: Duration
        /// The largest response body accepted; a larger one fails the call and closes its connection.
        public var maxBodyBytes: Int
        /// Tests only: PEM certificates to trust instead of the system's roots.
        public var trustedCertificatesPEM: [[UInt8]]?

        public init(
            connectionsPerHost: Int = 64, connectTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(60),
            maxBodyBytes: Int = 64 << 20, trustedCertificatesPEM: [[UInt8]]? = nil
        ) {
            self.connectionsPerHost = max(1, connectionsPerHost)
            self.connectTimeout = connectTimeout
            self.idleTimeout = idleTimeout
            self.maxBodyBytes = max(0, maxBodyBytes)
            self.trustedCertificatesPEM = trustedCertificatesPEM
        }
    }

    let configuration: Configuration
    let group: any EventLoopGroup
    private let pools = Mutex<[ProviderHTTPTarget: ProviderHTTPPool]>([:])
    private let shutDown = Atomic<Bool>(false)
    /// Built at the first https call (building one reads the trust store).
    private let tls = Mutex<NIOSSLContext?>(nil)

    public init(configuration: Configuration = Configuration(), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.configuration = configuration
        self.group = group
    }

    /// Sends a POST of `body` to `url` and returns the whole answer. Throws `ProviderHTTPError`
    /// (or `CancellationError`) when no complete answer came.
    public func post(url: String, headers: [ProviderRequest.Header], body: [UInt8], timeout: Duration) async throws -> ProviderResponse {
        try await send(method: "POST", url: url, headers: headers, body: body, timeout: timeout)
    }

    /// Sends a request of `method` (`GET`, `POST`, `DELETE`: an HTTP token, not HEAD; a GET with an empty
    /// body) and returns the whole answer, as `post` does. `maxBodyBytes`, when given, is this
    /// call's cap on the answer's body instead of the configured one (a provider batch's result
    /// file is larger than any live answer).
    public func send(
        method: String, url: String, headers: [ProviderRequest.Header], body: [UInt8], timeout: Duration, maxBodyBytes: Int? = nil
    ) async throws -> ProviderResponse {
        let target = try ProviderHTTPTarget(url)
        let deadline = NIODeadline.now() + Self.timeAmount(timeout)
        let bytes = try Self.requestBytes(method: method, target: target, headers: headers, body: body)
        let pool = try self.pool(for: target)
        var retried = false
        while true {
            try Task.checkCancellation()
            let lease: ProviderHTTPPool.Lease
            if let ready = try pool.tryAcquire() {
                lease = ready
            } else {
                lease = try await pool.acquire(deadline: deadline)
            }
            let connection: ProviderHTTPConnection
            let reused: Bool
            switch lease {
            case .idle(let idle):
                connection = idle
                reused = true
            case .new:
                connection = try await pool.connect(deadline: deadline)
                reused = false
            }
            do {
                return try await connection.execute(bytes, deadline: deadline, maxBodyBytes: maxBodyBytes.map { max(0, $0) })
            } catch ProviderHTTPError.closedBeforeResponse where reused && !retried {
                // A keep-alive connection the server had closed (or was closing) while it sat idle:
                // not one byte of an answer came, so the request is sent once more on a new
                // connection. Provider calls carry an Idempotency-Key, so a server that did act on
                // it can tell the repeat.
                retried = true
            }
        }
    }

    /// Closes every idle connection and refuses new calls; calls still running end as they would.
    public func shutdown() async throws {
        shutDown.store(true, ordering: .relaxed)
        let all = pools.withLock { pools in
            defer { pools.removeAll() }
            return Array(pools.values)
        }
        for pool in all { pool.shutdown() }
    }

    private func pool(for target: ProviderHTTPTarget) throws(ProviderHTTPError) -> ProviderHTTPPool {
        guard !shutDown.load(ordering: .relaxed) else { throw .shutDown }
        let key = target.key
        if let pool = pools.withLock({ $0[key] }) { return pool }
        let context = target.tls ? try tlsContext() : nil
        return pools.withLock { pools in
            if let pool = pools[key] { return pool }
            let pool = ProviderHTTPPool(target: key, configuration: configuration, group: group, tls: context)
            pools[key] = pool
            return pool
        }
    }

    private func tlsContext() throws(ProviderHTTPError) -> NIOSSLContext {
        do {
            return try tls.withLock { context in
                if let context { return context }
                var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
                if let pems = configuration.trustedCertificatesPEM {
                    tlsConfiguration.trustRoots = .certificates(try pems.flatMap { try NIOSSLCertificate.fromPEMBytes($0) })
                }
                let made = try NIOSSLContext(configuration: tlsConfiguration)
                context = made
                return made
            }
        } catch {
            throw .tls(String(describing: error))
        }
    }

    /// The request as it goes on the wire, head and body in one buffer. Header names and values
    /// with a CR, LF or NUL are refused (they would split the request); Host, Content-Length,
    /// Transfer-Encoding and Connection are this client's to write.
    static func requestBytes(
        method: String = "POST", target: ProviderHTTPTarget, headers: [ProviderRequest.Header], body: [UInt8]
    ) throws(ProviderHTTPError) -> ByteBuffer {
        // HEAD is refused: the response decoder is told every request is a POST (an answer with a body).
        guard isToken(method), method.uppercased() != "HEAD" else { throw .malformedHeader }
        var size = 96 + method.utf8.count + target.path.utf8.count + target.hostHeader.utf8.count + body.count
        for header in headers { size += header.name.utf8.count + header.value.utf8.count + 4 }
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        buffer.writeString(method)
        buffer.writeStaticString(" ")
        buffer.writeString(target.path)
        buffer.writeStaticString(" HTTP/1.1\r\nHost: ")
        buffer.writeString(target.hostHeader)
        buffer.writeStaticString("\r\n")
        var authorized = false
        for header in headers {
            guard isToken(header.name) else { throw .malformedHeader }
            guard !header.value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) else { throw .malformedHeader }
            switch header.name.lowercased() {
            case "host", "content-length", "transfer-encoding", "connection": continue
            case "authorization": authorized = true
            default: break
            }
            buffer.writeString(header.name)
            buffer.writeStaticString(": ")
            buffer.writeString(header.value)
            buffer.writeStaticString("\r\n")
        }
        if let basic = target.basicAuthorization, !authorized {
            buffer.writeStaticString("Authorization: Basic ")
            buffer.writeString(basic)
            buffer.writeStaticString("\r\n")
        }
        buffer.writeStaticString("Content-Length: ")
        buffer.writeString(String(body.count))
        buffer.writeStaticString("\r\n\r\n")
        buffer.writeBytes(body)
        return buffer
    }

    /// An HTTP token (RFC 9110): what a header name may be made of.
    private static func isToken(_ name: String) -> Bool {
        guard !name.isEmpty else { return false }
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): continue
            case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
                UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
                UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
                continue
            default: return false
            }
        }
        return true
    }

    /// A duration as NIO's, clamped into 0 s ... 30 days (a configured timeout is never trusted
    /// to fit an Int64 of nanoseconds).
    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return .zero }
        guard seconds < 30 * 86_400 else { return .hours(30 * 24) }
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

/// Why a provider call got no complete answer. The descriptions name no URL, header or secret.
public enum ProviderHTTPError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The URL is not `http(s)://host[:port][/path]`.
    case invalidURL
    /// A scheme other than http or https.
    case unsupportedScheme
    /// A header name or value that would split the request.
    case malformedHeader
    /// The connection was refused, reset or could not be made.
    case connectFailed(String)
    /// No connection within the connect timeout.
    case connectTimeout
    /// TLS could not be set up (the trust store, or the handshake).
    case tls(String)
    /// The deadline passed before the whole answer came.
    case timeout
    /// The connection closed before the first byte of an answer.
    case closedBeforeResponse
    /// The connection closed partway through the answer.
    case closedMidResponse
    /// The answer is not HTTP/1.1 that llhttp accepts (garbage, a header over 80 KiB, an answer
    /// to no request).
    case invalidResponse(String)
    /// The body is larger than the configured cap.
    case bodyTooLarge(limit: Int)
    /// The client was shut down.
    case shutDown

    public var description: String {
        switch self {
        case .invalidURL: "invalid url"
        case .unsupportedScheme: "unsupported scheme"
        case .malformedHeader: "malformed header (CR, LF or NUL in a header)"
        case .connectFailed(let why): "connection failed: \(why)"
        case .connectTimeout: "connect timeout"
        case .tls(let why): "tls: \(why)"
        case .timeout: "timeout: no whole answer by the call's deadline"
        case .closedBeforeResponse: "connection closed before an answer (remote connection closed)"
        case .closedMidResponse: "connection closed mid-answer (remote connection closed)"
        case .invalidResponse(let why): "invalid response: \(why)"
        case .bodyTooLarge(let limit): "response body over \(limit) bytes"
        case .shutDown: "client shut down"
        }
    }
}

/// Where a call goes: scheme, host and port (the pool's key), with the request target and Host
/// header. Parsed without Foundation; the user:password of a URL becomes Basic authorization and
/// is kept out of every description.
struct ProviderHTTPTarget: Hashable, Sendable {
    var tls: Bool
    var host: String
    var port: Int
    var path: String = "/"
    var hostHeader: String = ""
    var basicAuthorization: String? = nil

    init(tls: Bool, host: String, port: Int) {
        self.tls = tls
        self.host = host
        self.port = port
    }

    init(_ url: String) throws(ProviderHTTPError) {
        let bytes = Array(url.utf8)
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")),
            bytes.count >= colon + 3, bytes[colon + 1] == UInt8(ascii: "/"), bytes[colon + 2] == UInt8(ascii: "/")
        else { throw .invalidURL }
        switch String(decoding: bytes[..<colon], as: UTF8.self).lowercased() {
        case "http": tls = false
        case "https": tls = true
        default: throw .unsupportedScheme
        }
        let authorityStart = colon + 3
        let authorityEnd =
            bytes[authorityStart...].firstIndex(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") })
            ?? bytes.endIndex
        var hostStart = authorityStart
        if let at = bytes[authorityStart..<authorityEnd].lastIndex(of: UInt8(ascii: "@")) {
            basicAuthorization = Self.base64(Self.percentDecoded(bytes[authorityStart..<at]))
            hostStart = at + 1
        }
        var hostEnd = authorityEnd
        var portStart: Int? = nil
        if hostStart < authorityEnd && bytes[hostStart] == UInt8(ascii: "[") {
            guard let close = bytes[hostStart..<authorityEnd].firstIndex(of: UInt8(ascii: "]")) else { throw .invalidURL }
            host = String(decoding: bytes[(hostStart + 1)..<close], as: UTF8.self)
            if close + 1 < authorityEnd {
                guard bytes[close + 1] == UInt8(ascii: ":") else { throw .invalidURL }
                portStart = close + 2
            }
        } else {
            if let portColon = bytes[hostStart..<authorityEnd].firstIndex(of: UInt8(ascii: ":")) {
                hostEnd = portColon
                portStart = portColon + 1
            }
            host = String(decoding: bytes[hostStart..<hostEnd], as: UTF8.self)
        }
        guard !host.isEmpty, !host.utf8.contains(where: { $0 <= 32 || $0 == 127 }) else { throw .invalidURL }
        let defaultPort = tls ? 443 : 80
        port = defaultPort
        if let portStart, portStart < authorityEnd {
            var value = 0
            for byte in bytes[portStart..<authorityEnd] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte), value <= 65_535 else { throw .invalidURL }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            guard (1...65_535).contains(value) else { throw .invalidURL }
            port = value
        }
        let pathEnd = bytes[authorityEnd...].firstIndex(of: UInt8(ascii: "#")) ?? bytes.endIndex
        let rawPath = bytes[authorityEnd..<pathEnd]
        guard !rawPath.contains(where: { $0 <= 32 || $0 == 127 }) else { throw .invalidURL }
        path = rawPath.isEmpty ? "/" : (rawPath.first == UInt8(ascii: "?") ? "/" : "") + String(decoding: rawPath, as: UTF8.self)
        let shownHost = host.contains(":") ? "[" + host + "]" : host
        hostHeader = port == defaultPort ? shownHost : shownHost + ":" + String(port)
    }

    /// The pool's key: the same host reached with another path or credentials shares connections.
    var key: ProviderHTTPTarget { ProviderHTTPTarget(tls: tls, host: host, port: port) }

    /// Whether `host` is an IP address (which SNI must not carry).
    var hostIsIPAddress: Bool {
        host.contains(":") || host.utf8.allSatisfy { $0 == UInt8(ascii: ".") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    private static func percentDecoded(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == UInt8(ascii: "%"), index + 2 < bytes.endIndex,
                let high = hexValue(bytes[index + 1]), let low = hexValue(bytes[index + 2])
            {
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return out
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let b0 = bytes[index]
            let b1 = index + 1 < bytes.count ? bytes[index + 1] : 0
            let b2 = index + 2 < bytes.count ? bytes[index + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(index + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(index + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
