import Foundation
import Hummingbird
import SluiceQueue
import SluiceWorker
import SluiceScaler

/// `GET /v1/scaling[/{pool}]` (scope read): the autoscaler's decisions with their lanes' signals;
/// and `GET /metrics` (no key), rendered by `SluiceMetrics`.
extension SluiceAPI {
    func addScalingRoutes(to v1: RouterGroup<SluiceRequestContext>) {
        v1.get("scaling") { _, context in
            _ = try context.require(.read)
            return try Self.json(["object": "list", "data": try await self.decisions().map(\.document)])
        }
        v1.get("scaling/:pool") { _, context in
            _ = try context.require(.read)
            let name = context.parameters.get("pool") ?? ""
            guard let decision = try await self.decisions().first(where: { $0.pool == name }) else {
                throw APIError(.notFound, type: "not_found", message: "no pool named '\(name)' (workers/\(name).yaml)")
            }
            return try Self.json(decision.document)
        }
    }

    /// The monitor's latest decisions, or a fresh sample when it has none yet.
    func decisions() async throws -> [PoolDecision] {
        guard let scaling else { throw APIError(.serviceUnavailable, type: "unavailable", message: "this process runs no scaling monitor") }
        let latest = scaling.snapshot.decisions
        return latest.isEmpty ? try await scaling.tick() : latest
    }

    func metricsResponse() async throws -> Response {
        guard let scaling else { throw APIError(.serviceUnavailable, type: "unavailable", message: "this process runs no scaling monitor") }
        var snapshot = scaling.snapshot
        if snapshot.samples.isEmpty && snapshot.decisions.isEmpty {
            _ = try await scaling.tick()
            snapshot = scaling.snapshot
        }
        var providerStats: [(String, ProviderStats.Snapshot)] = []
        for name in providers.keys.sorted() { providerStats.append((name, try await ProviderStats.read(queue.redis, provider: name))) }
        let body = metrics.render(samples: snapshot.samples, decisions: snapshot.decisions, providers: providerStats)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
