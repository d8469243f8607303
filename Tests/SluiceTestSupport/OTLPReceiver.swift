import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A small OpenTelemetry collector for tests: it takes OTLP/HTTP JSON exports (`POST /v1/traces`,
/// what `tracing: {protocol: http/json}` sends) on a loopback port and keeps every span.
public final class OTLPReceiver: Sendable {
    /// One span as it arrived; ids as lower-case hex.
    public struct Span: Sendable, Hashable {
        public var name: String
        public var traceID: String
        public var spanID: String
        /// "" for a root span.
        public var parentSpanID: String
        /// Every attribute's value as text (an int as its digits, a bool as true/false).
        public var attributes: [String: String]
        /// The OTLP span kind (1 internal, 2 server, 3 client, 4 producer, 5 consumer).
        public var kind: Int
    }

    private let state = Mutex<(spans: [Span], exports: Int, malformed: Int)>(([], 0, 0))
    fileprivate let hooks = Mutex<[String?]>([])

    /// The `traceparent` header of each POST to `/hook` (a webhook receiver beside the collector), nil when it had none.
    public var hookTraceparents: [String?] { hooks.withLock { $0 } }

    /// Every span received so far, in arrival order.
    public var spans: [Span] { state.withLock { $0.spans } }
    /// Bodies that were not OTLP JSON.
    public var malformed: Int { state.withLock { $0.malformed } }

    func receive(_ body: [UInt8]) {
        let spans = Self.spans(fromExport: body)
        state.withLock { state in
            state.exports += 1
            if let spans { state.spans += spans } else { state.malformed += 1 }
        }
    }

    /// The spans of one `ExportTraceServiceRequest` in its JSON form; nil when it is not one.
    public static func spans(fromExport body: [UInt8]) -> [Span]? {
        guard let root = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let resources = root["resourceSpans"] as? [[String: Any]]
        else { return nil }
        var found: [Span] = []
        for resource in resources {
            for scope in resource["scopeSpans"] as? [[String: Any]] ?? [] {
                for span in scope["spans"] as? [[String: Any]] ?? [] {
                    var attributes: [String: String] = [:]
                    for attribute in span["attributes"] as? [[String: Any]] ?? [] {
                        guard let key = attribute["key"] as? String, let value = attribute["value"] as? [String: Any], let first = value.first
                        else { continue }
                        attributes[key] = "\(first.value)"
                    }
                    found.append(
                        Span(
                            name: span["name"] as? String ?? "", traceID: hex(span["traceId"]), spanID: hex(span["spanId"]),
                            parentSpanID: hex(span["parentSpanId"]), attributes: attributes, kind: (span["kind"] as? Int) ?? 0))
                }
            }
        }
        return found
    }

    /// An id as OTLP JSON writes it (hex per the spec, base64 as protobuf's JSON mapping does),
    /// as lower-case hex; "" for none.
    static func hex(_ value: Any?) -> String {
        guard let text = value as? String, !text.isEmpty else { return "" }
        let isHex = (text.count == 32 || text.count == 16) && text.allSatisfy(\.isHexDigit)
        if isHex { return text.lowercased() }
        guard let bytes = Data(base64Encoded: text) else { return text }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }
}

/// Runs `body` with an `OTLPReceiver` on a loopback port; `body` gets it and its base URL
/// (`http://127.0.0.1:<port>`, the collector's endpoint: spans go to its `/v1/traces`). Its
/// `/hook` answers 200 to any POST and keeps the request's `traceparent` (a webhook receiver).
public func withOTLPReceiver<T: Sendable>(_ body: (OTLPReceiver, String) async throws -> T) async throws -> T {
    let receiver = OTLPReceiver()
    let router = Router()
    router.post("v1/traces") { request, _ -> Response in
        let bytes = try await request.body.collect(upTo: 16 << 20)
        receiver.receive(Array(buffer: bytes))
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
    }
    router.post("hook") { request, _ -> Response in
        receiver.hooks.withLock { $0.append(request.headers[HTTPField.Name("traceparent")!]) }
        return Response(status: .ok)
    }
    return try await withLoopbackServer(router, name: "otlp") { url in try await body(receiver, url) }
}
