import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceStore

/// Requires `Authorization: Bearer <key>` (or `x-api-key: <key>`) and puts the key in the context.
///
/// A key found valid is remembered (`AuthCache`), so that a busy client does not cost a database
/// read per request. A change to the key evicts it at once in the process that made it and, through
/// the `sluice:keys:changed` announcement, in every process running a `KeyChangeListener`; the
/// cache's lifetime (10 s by default) bounds a process that missed the announcement.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = SluiceRequestContext
    let keys: APIKeyStore
    let cache: AuthCache
    static let anthropicKey = HTTPField.Name("x-api-key")!

    func handle(
        _ request: Request, context: SluiceRequestContext,
        next: (Request, SluiceRequestContext) async throws -> Response
    ) async throws -> Response {
        // Bearer, or Anthropic's x-api-key (so that the anthropic SDK works unchanged).
        let presented: String
        if let header = request.headers[.authorization], header.hasPrefix("Bearer ") {
            presented = String(header.dropFirst("Bearer ".count))
        } else if let header = request.headers[Self.anthropicKey], !header.isEmpty {
            presented = header
        } else {
            var error = APIError(.unauthorized, type: "authentication", message: "send Authorization: Bearer <API key>")
            error.headers[.wwwAuthenticate] = "Bearer"
            throw error
        }
        let key: APIKey
        if let cached = cache.lookup(presented) {
            key = cached
        } else {
            // Taken before the read: a change announced while it runs keeps this read out of the cache.
            let generation = cache.generation
            guard let found = try await keys.authenticateAsync(presented) else {
                throw APIError(.unauthorized, type: "authentication", message: "the API key is not valid or was revoked")
            }
            cache.store(presented, found, readAt: generation)
            key = found
        }
        if cache.shouldRecordUse(of: key) {
            // Last-used is bookkeeping: a failed write must not fail the request.
            do { try await keys.recordUseAsync(id: key.id) } catch {
                context.logger.warning("could not record a key's use", metadata: ["key": "\(key.prefix)", "error": "\(error)"])
            }
        }
        var context = context
        context.key = key
        return try await next(request, context)
    }
}
