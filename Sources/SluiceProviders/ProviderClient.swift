import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Makes provider calls over HTTP (AsyncHTTPClient) and classifies what comes back.
public struct ProviderClient: Sendable {
    let http: HTTPClient

    public init(http: HTTPClient) {
        self.http = http
    }

    /// An HTTP client for provider calls: `connections` per host, a 10 s connect timeout, and no
    /// retrying of refused connections (a provider that is down must fail the call at once, not
    /// hold it until the call's timeout). The caller shuts it down.
    public static func makeHTTPClient(connectionsPerHost: Int = 64) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = connectionsPerHost
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(10)
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// One call's result: the answer (when one came), what it means, and how long it took.
    public struct Result: Sendable {
        public var response: ProviderResponse?
        public var outcome: CallOutcome
        public var latency: Duration
    }

    /// Sends `request`; never throws: a failure to get an answer is a classified outcome.
    public func call(_ request: ProviderRequest) async -> Result {
        var outgoing = HTTPClientRequest(url: request.url)
        outgoing.method = .POST
        for header in request.headers { outgoing.headers.add(name: header.name, value: header.value) }
        outgoing.body = .bytes(ByteBuffer(bytes: request.body))
        let started = ContinuousClock.now
        do {
            let timeout = TimeAmount.milliseconds(Int64(request.timeout / .milliseconds(1)))
            let answer = try await http.execute(outgoing, timeout: timeout)
            let body = try await answer.body.collect(upTo: 64 << 20)
            let response = ProviderResponse(
                status: Int(answer.status.code), headers: answer.headers.map { ($0.name, $0.value) },
                body: Array(body.readableBytesView))
            return Result(response: response, outcome: ProviderAdapter.classify(response), latency: ContinuousClock.now - started)
        } catch {
            return Result(
                response: nil, outcome: ProviderAdapter.classify(transportError: String(describing: error)),
                latency: ContinuousClock.now - started)
        }
    }
}
