import Hummingbird
import SluiceRedis
import SluiceStore

/// `GET /healthz` (the process answers), `GET /readyz` (Redis and the database answer) and
/// `GET /openapi.json`; no key needed.
struct HealthController: Sendable {
    let redis: RedisClient
    let database: SluiceDatabase

    struct Status: ResponseEncodable {
        let status: String
        /// Which dependency does not answer (never the error's text: paths, addresses, library messages).
        var reason: String?
    }

    func addRoutes(to router: Router<SluiceRequestContext>) {
        router.get("/healthz") { _, _ in Status(status: "ok") }
        router.get("/readyz", use: ready)
        router.get("/openapi.json") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(bytes: SluiceAPI.openAPIDocument)))
        }
    }

    /// Ready when Redis and the database answer; 503 with Retry-After naming the one that does not.
    @Sendable func ready(_ request: Request, _ context: SluiceRequestContext) async throws -> EditedResponse<Status> {
        var failing: String?
        do { _ = try await redis.send("PING") } catch { failing = "redis" }
        if failing == nil {
            do { _ = try database.journalMode() } catch { failing = "database" }
        }
        guard let failing else { return EditedResponse(response: Status(status: "ready")) }
        return EditedResponse(
            status: .serviceUnavailable, headers: [.retryAfter: "1"],
            response: Status(status: "unavailable", reason: "\(failing) does not answer"))
    }
}
