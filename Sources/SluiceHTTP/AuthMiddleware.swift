import HTTPTypes
import Hummingbird
import Logging
import SluiceCore
import SluiceStore

/// Requires `Authorization: Bearer <key>` (or `x-api-key: <key>`) and puts the key in the context.
///
/// A key found valid is remembered (`AuthCache`), so that a busy client does not cost a database
/// read per request. A change to the key evicts it at once in the process that made it and, through
/// the `sluice:keys:changed` announcement, in every process running a `KeyChangeListener`; the
/// cache's lifetime (10 s by default) bounds a process that missed the announcement.
///
/// With `auth.jwt` configured, a bearer token that is a JWT (two dots, not `sluice_…`) is an
/// OAuth 2.0 access token instead: `JWTVerifier` checks it, and the request then acts as the API
/// key the issuer maps the token's tenant to (its limits, budget, webhook secret and usage), with
/// the token's scopes narrowed to that key's. A revoked or missing key refuses the token.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = SluiceRequestContext
    let keys: APIKeyStore
    let cache: AuthCache
    /// The access-token verifier; nil: API keys only.
    var jwt: JWTVerifier? = nil
    static let anthropicKey = HTTPField.Name("x-api-key")!
    /// A mapping mistake in auth.jwt is hit by every token of the tenant: logged once a minute.
    static let configurationLog = OncePer<String>(.seconds(60))

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
            var error = APIError(.unauthorized, type: "authentication", message: "send Authorization: Bearer <API key>: the admin key `sluice up` printed at its first start, or one made with `sluice keys create --tenant NAME --scopes submit,read`")
            error.headers[.wwwAuthenticate] = "Bearer"
            throw error
        }
        let key: APIKey
        if let jwt, JWTVerifier.looksLikeJWT(presented) {
            key = try await tokenKey(presented, jwt, logger: context.logger)
        } else if let cached = cache.lookup(presented) {
            key = cached
        } else {
            // Taken before the read: a change announced while it runs keeps this read out of the cache.
            let generation = cache.generation
            guard let found = try await keys.authenticateAsync(presented) else {
                throw APIError(.unauthorized, type: "authentication", message: "the API key is not valid or was revoked: use the admin key `sluice up` printed at its first start, or make one with `sluice keys create --tenant NAME --scopes submit,read` (`sluice keys list` shows the keys that exist)")
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

    /// The key a verified access token acts as, with the token's scopes (narrowed to the key's).
    /// The verifier checks the token on every request (from its cache until `exp`); the key is
    /// then remembered under the token like an API key, and evicted with it on a key change.
    private func tokenKey(_ token: String, _ jwt: JWTVerifier, logger: Logger) async throws -> APIKey {
        let identity: JWTIdentity
        do { identity = try await jwt.identity(for: token) } catch {
            var refusal = APIError(.unauthorized, type: "authentication", message: error.message)
            refusal.headers[.wwwAuthenticate] = #"Bearer error="invalid_token""#
            throw refusal
        }
        if let cached = cache.lookup(token) { return cached }
        let generation = cache.generation
        let prefix = identity.keyPrefix
        guard let mapped = try await offPool({ try keys.find(prefix: prefix) }), !mapped.isRevoked else {
            if Self.configurationLog.due("\(identity.issuer) \(prefix) missing") {
                logger.error("auth.jwt maps tokens to a key that is missing or revoked", metadata: ["issuer": "\(identity.issuer)", "key": "\(prefix)"])
            }
            throw APIError(.unauthorized, type: "authentication", message: "the API key auth.jwt maps this token to (\(prefix)) is missing or revoked")
        }
        // Two tenants never share a key: a token of tenant A mapped to tenant B's key is refused.
        if let tenant = identity.tenant, tenant != mapped.tenant {
            if Self.configurationLog.due("\(identity.issuer) \(prefix) \(tenant)") {
                logger.error(
                    "auth.jwt maps a tenant to another tenant's key", metadata: ["issuer": "\(identity.issuer)", "key": "\(prefix)", "tenant": "\(tenant)"])
            }
            throw APIError(.unauthorized, type: "authentication", message: "the token's tenant is not the tenant of the API key auth.jwt maps it to (\(prefix))")
        }
        var key = mapped
        key.scopes = identity.scopes.filter { mapped.scopes.contains($0) || mapped.scopes.contains(.admin) }
        guard !key.scopes.isEmpty else {
            throw APIError(.forbidden, type: "permission", message: "no scope: the token's scopes are none of the scopes of the API key auth.jwt maps it to (\(prefix))")
        }
        cache.store(token, key, readAt: generation)
        return key
    }
}
