import Foundation
import Hummingbird
import NIOHTTP1
import SluiceCore
import SluiceQueue
import SluiceRedis

/// An error as the API reports it: a status and `{"error": {"type", "message", "param"?}}`.
///
/// Every error reaches the client through here (`APIErrorMiddleware`), so the mapping from the
/// queue's, the store's and Redis's errors to HTTP lives in one place.
public struct APIError: HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    /// A stable, machine-readable kind: `invalid_request`, `authentication`, `permission`, …
    public var type: String
    public var message: String
    /// The request field at fault, when there is one.
    public var param: String?
    /// Extra headers (Retry-After for 429 and 503).
    public var headers: HTTPFields = [:]
    /// The job the error is about, when the client can still follow it (`job_id` in the body).
    public var jobID: String?

    public init(_ status: HTTPResponse.Status, type: String, message: String, param: String? = nil) {
        self.status = status
        self.type = type
        self.message = message
        self.param = param
    }

    static func invalid(_ message: String, param: String? = nil) -> APIError {
        APIError(.badRequest, type: "invalid_request", message: message, param: param)
    }

    static let notFound = APIError(.notFound, type: "not_found", message: "no such job")

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        // The API's one encoder: a message that names a path (`GET /v1/jobs/…`) keeps its `/`.
        let body = try JSONObjectWriter.encode(Body(error: .init(type: type, message: message, param: param, jobID: jobID)))
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// `{"error": {"type", "message", "param"?, "job_id"?}}`.
    struct Body: Encodable {
        struct Detail: Encodable {
            let type: String
            let message: String
            let param: String?
            let jobID: String?

            enum CodingKeys: String, CodingKey {
                case type, message, param
                case jobID = "job_id"
            }
        }

        let error: Detail
    }

    /// The API's view of any error thrown below it.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as any HTTPResponseError where error.status.code < 500:
            // Hummingbird's own (HTTPError, a body over the size limit, …): keep the status.
            let type =
                switch error.status {
                case .contentTooLarge: "request_too_large"
                case .notFound: "not_found"
                case .unsupportedMediaType: "unsupported_media_type"
                default: "invalid_request"
                }
            let message =
                (error as? HTTPError)?.body
                ?? (error.status == .contentTooLarge ? "the body is over the 1 MiB limit" : error.status.reasonPhrase)
            return APIError(error.status, type: type, message: message)
        case QueueError.invalidSpec(_, .invalid(let field, let reason)):
            return .invalid("\(field) \(reason)", param: field)
        case is HTTPParserError:
            // A client that stopped mid-body (or sent a broken request): its fault, not ours.
            return APIError(.badRequest, type: "invalid_request", message: "the request was cut off or malformed")
        case let error as RedisError where error.isConnectionError:
            var unavailable = APIError(.serviceUnavailable, type: "unavailable", message: "the queue is unreachable; retry shortly")
            unavailable.headers[.retryAfter] = "1"
            return unavailable
        default:
            return APIError(.internalServerError, type: "internal", message: "internal error")
        }
    }
}

/// Turns every error into the API's JSON error, and logs the unexpected ones.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let apiError = APIError.from(error)
            if apiError.status == .internalServerError {
                context.logger.error(
                    "unexpected error", metadata: ["method": "\(request.method)", "path": "\(request.uri.path)", "error": "\(error)"])
            } else if error is HTTPParserError {
                // A client can cause this at will: not an error of ours, so not at error level.
                context.logger.debug("request cut off", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            }
            return try apiError.response(from: request, context: context)
        }
    }
}
