import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Hummingbird
import HummingbirdTesting
import Logging
import SluiceCore
import SluiceHTTP
import SluiceProviders
import SluiceQueue
import SluiceScaler
import SluiceStore
import SluiceTestSupport
import SluiceWebhooks
import SluiceWorker
import Testing

/// What the facade's tests (the response cache's, the inline calls') share: the mock's lane, the
/// API served on loopback with inline calls for it, and a facade call on a connection of its own.
enum FacadeHarness {
    /// The one lane: model `gpt-4o-mini` of provider `mock`.
    static let lane = "mock/gpt-4o-mini"

    /// The lane on the mock provider at `base` (its OpenAI API under `/v1`), 8 calls at once.
    static func mockLane(_ base: String, limits: SluiceConfiguration.Limits = .init()) -> WorkerLane {
        WorkerLane(
            lane: lane, provider: ProviderSettings(name: "mock", kind: .openai, baseURL: base + "/v1", timeout: .seconds(30)),
            path: "/chat/completions", limits: limits, concurrency: 8, model: "gpt-4o-mini")
    }

    /// Serves the API (`settings`, the services named, inline calls for `lane` at most `inlineLimit`
    /// at once) on loopback while `body` runs, with `beside` running alongside (cancelled after);
    /// the inline calls' HTTP client is shut down after, however `body` ends.
    static func withInlineAPI(
        queue: JobQueue, waiter: JobWaiter, keys: APIKeyStore, archive: ArchiveStore, settings: SluiceAPI.Settings, lane: WorkerLane,
        inlineLimit: Int, scaling: ScalingMonitor? = nil, logger: Logger,
        beside: @escaping @Sendable (InlineCalls) async throws -> Void = { _ in },
        _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let http = ProviderClient.makeHTTPClient(connectionsPerHost: 8)
        let inline = InlineCalls(lanes: [lane], queue: queue, client: ProviderClient(http: http), limit: inlineLimit, logger: logger)
        let api = SluiceAPI(
            services: .init(
                queue: queue, waiter: waiter, keys: keys, archive: archive,
                webhooks: WebhookStore(redis: queue.redis, retention: queue.configuration.resultTTL), scaling: scaling, inline: inline),
            settings: settings)
        let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await beside(inline) }
                try await app.test(.live) { client in try await body(client) }
                group.cancelAll()
            }
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }

    /// A facade chat call on a connection of its own (calls on one connection are answered in
    /// turn, so concurrent calls need their own): its status, body and `X-Sluice-Job` header.
    static func chat(port: Int, key: String, body: String, headers: [String: String] = [:]) async throws -> (
        status: Int, body: Data, job: String?
    ) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v1/chat/completions")!)
        request.httpMethod = "POST"
        request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = Data(body.utf8)
        request.timeoutInterval = 60
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        return (http.statusCode, data, http.value(forHTTPHeaderField: "X-Sluice-Job"))
    }
}
