import Hummingbird
import SluiceQueue
import SluiceScaler
import SluiceStore

/// `GET /metrics`: the Prometheus exposition (`SluiceMetrics`) of the scaling monitor's latest
/// sample and the providers' call statistics. Without a key, unless `server.metrics_key:
/// required`, which asks for a key with the read (or admin) scope (`auth` set).
struct MetricsController: Sendable {
    let scaling: ScalingMonitor?
    let providers: ProvidersController
    /// The routes' canaries (nil: none shown).
    var routes: RoutesController? = nil
    let auth: AuthMiddleware?
    /// The usage ledger, for the dollars saved (nil: not shown).
    var archive: ArchiveStore? = nil
    let metrics = SluiceMetrics()

    func addRoutes(to router: Router<SluiceRequestContext>) {
        if let auth {
            router.group("metrics").add(middleware: auth).get { request, context in
                _ = try context.require(.read)
                return try await exposition(request, context)
            }
        } else {
            router.get("/metrics", use: exposition)
        }
    }

    @Sendable func exposition(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        guard let scaling else { throw APIError(.serviceUnavailable, type: "unavailable", message: "this process runs no scaling monitor") }
        var snapshot = scaling.snapshot
        if snapshot.samples.isEmpty && snapshot.decisions.isEmpty {
            _ = try await scaling.tick()
            snapshot = scaling.snapshot
        }
        let cache = try await ResponseCache(redis: providers.queue.redis).stats()
        let body = metrics.render(
            samples: snapshot.samples, decisions: snapshot.decisions, providers: try await providers.stats(),
            canaries: try await routes?.canaries() ?? [], cache: cache, saved: try await archive?.savedTotals())
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
