import Hummingbird
import Logging
import SluiceCore

/// The access log (`server.access_log: true`): one `info` line per request, when its response
/// head is ready, with the method, the path (no query string), the status, the milliseconds
/// taken and the client's address as `ClientAddress` resolves it. Headers are never logged (they
/// carry keys). Off by default, and then not in the router at all: it costs nothing.
///
/// A streamed answer (an event stream, a long download) is logged when its head is sent, not
/// when its body ends.
struct AccessLogMiddleware: RouterMiddleware {
    typealias Context = SluiceRequestContext
    let clientAddress: ClientAddress

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await next(request, context)
            log(request, context, status: response.status.code, started: started)
            return response
        } catch {
            log(request, context, status: (error as? any HTTPResponseError)?.status.code ?? 500, started: started)
            throw error
        }
    }

    func log(_ request: Request, _ context: Context, status: Int, started: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - started
        let ms = Bounded.seconds(elapsed) * 1000
        context.logger.info(
            "request",
            metadata: [
                "method": "\(request.method)", "path": "\(request.uri.path.prefix(512))", "status": "\(status)",
                "ms": "\((ms * 10).rounded() / 10)", "client": "\(clientAddress.resolve(request, context))",
            ])
    }
}
