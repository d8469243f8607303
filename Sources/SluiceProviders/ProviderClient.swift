/// Makes provider calls over HTTP (`ProviderHTTPClient`) and classifies what comes back.
public struct ProviderClient: Sendable {
    let http: ProviderHTTPClient

    public init(http: ProviderHTTPClient) {
        self.http = http
    }

    /// An HTTP client for provider calls: `connections` per host, a 10 s connect timeout, and no
    /// retrying of refused connections (a provider that is down must fail the call at once, not
    /// hold it until the call's timeout). The caller shuts it down.
    public static func makeHTTPClient(connectionsPerHost: Int = 64) -> ProviderHTTPClient {
        ProviderHTTPClient(configuration: .init(connectionsPerHost: connectionsPerHost, connectTimeout: .seconds(10)))
    }

    /// One call's result: the answer (when one came), what it means, and how long it took.
    public struct Result: Sendable {
        public var response: ProviderResponse?
        public var outcome: CallOutcome
        public var latency: Duration
    }

    /// Sends `request`; never throws: a failure to get an answer is a classified outcome. The
    /// request's timeout is the deadline of the whole call.
    public func call(_ request: ProviderRequest) async -> Result {
        let started = ContinuousClock.now
        do {
            let response = try await http.post(url: request.url, headers: request.headers, body: request.body, timeout: request.timeout)
            return Result(response: response, outcome: ProviderAdapter.classify(response), latency: ContinuousClock.now - started)
        } catch {
            return Result(
                response: nil, outcome: ProviderAdapter.classify(transportError: String(describing: error)),
                latency: ContinuousClock.now - started)
        }
    }
}
