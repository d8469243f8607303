import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore
import SluiceStore

/// `/v1/keys`, for admin keys: create, list, read, change the limits of, and revoke API keys.
///
/// - `POST /v1/keys` `{"tenant", "scopes": ["submit", "read"], "limits"?: {…}}`: 201 with the
///   key's record and, once only, its secret in `key`.
/// - `GET /v1/keys[?tenant=]`, `GET /v1/keys/{prefix}`: records, never secrets, each with its
///   `open_jobs` (its jobs not yet finished).
/// - `PATCH /v1/keys/{prefix}` `{"limits": {…}}`: a limit given replaces the old one, `null`
///   removes it, one left out stays.
/// - `DELETE /v1/keys/{prefix}`: revokes it (kept, marked revoked); 404 if there is none.
///
/// Limits: `{"submit_rate": jobs/s, "submit_burst": jobs, "max_queued": jobs, "max_priority": n,
/// "lanes": ["provider", "provider/model"]}`.
extension SluiceAPI {
    func addKeyRoutes(to v1: RouterGroup<SluiceRequestContext>) {
        v1.post("keys") { request, context in try await self.createKey(request, context) }
        v1.get("keys") { request, context in try await self.listKeys(request, context) }
        v1.get("keys/:prefix") { _, context in try await self.keyDocument(try self.namedKey(context)) }
        v1.patch("keys/:prefix") { request, context in try await self.updateKey(request, context) }
        v1.delete("keys/:prefix") { _, context in try await self.revokeKey(context) }
    }

    func createKey(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        _ = try context.require(.admin)
        let object = try await Self.jsonObject(request, context, fields: ["tenant", "scopes", "limits"])
        guard let tenant = object["tenant"] as? String else { throw APIError.invalid("'tenant' must be a string", param: "tenant") }
        guard let names = object["scopes"] as? [String] else {
            throw APIError.invalid("'scopes' must be an array of \"submit\", \"read\", \"admin\"", param: "scopes")
        }
        let scopes: Set<Scope>
        do { scopes = try Scope.parseList(names.joined(separator: ",")) } catch {
            throw APIError.invalid("\(error)", param: "scopes")
        }
        let limits = try Self.limits(object["limits"], over: KeyLimits())
        let created: (secret: String, key: APIKey)
        do { created = try keys.create(tenant: tenant, scopes: scopes, limits: limits) } catch StoreError.invalid(let field, let reason) {
            throw APIError.invalid("\(field) \(reason)", param: field)
        }
        var document = try await render(created.key)
        document["key"] = created.secret
        return try Self.json(document, status: .created)
    }

    func listKeys(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        _ = try context.require(.admin)
        let tenant = request.uri.queryParameters["tenant"].map(String.init)
        var data: [[String: Any]] = []
        for key in try keys.list(tenant: tenant) { data.append(try await render(key)) }
        return try Self.json(["object": "list", "data": data])
    }

    func updateKey(_ request: Request, _ context: SluiceRequestContext) async throws -> Response {
        let key = try namedKey(context)
        let object = try await Self.jsonObject(request, context, fields: ["limits"])
        let limits = try Self.limits(object["limits"], over: key.limits)
        let updated: APIKey?
        do { updated = try keys.setLimits(prefix: key.prefix, limits) } catch StoreError.invalid(let field, let reason) {
            throw APIError.invalid("\(field) \(reason)", param: "limits.\(field)")
        }
        guard let updated else { throw APIError.noSuchKey }
        cache.forget(prefix: key.prefix)  // in force at once here; other processes within the cache's 10 s
        return try await keyDocument(updated)
    }

    func revokeKey(_ context: SluiceRequestContext) async throws -> Response {
        let key = try namedKey(context)
        try keys.revoke(prefix: key.prefix)
        cache.forget(prefix: key.prefix)
        guard let revoked = try keys.find(prefix: key.prefix) else { throw APIError.noSuchKey }
        return try await keyDocument(revoked)
    }

    // MARK: - Helpers

    /// The key named by the path's `prefix`, for an admin caller.
    private func namedKey(_ context: SluiceRequestContext) throws -> APIKey {
        _ = try context.require(.admin)
        guard let prefix = context.parameters.get("prefix"), let key = try keys.find(prefix: prefix) else {
            throw APIError.noSuchKey
        }
        return key
    }

    private func keyDocument(_ key: APIKey) async throws -> Response { try Self.json(try await render(key)) }

    private func render(_ key: APIKey) async throws -> [String: Any] {
        var document: [String: Any] = [
            "object": "api_key", "prefix": key.prefix, "tenant": key.tenant, "scopes": key.scopes.sorted().map(\.rawValue),
            "created_at": key.createdAt.value / 1000, "open_jobs": try await queue.openJobs(key: key.id),
            "status": key.isRevoked ? "revoked" : "active",
        ]
        var limits: [String: Any] = [:]
        limits["submit_rate"] = key.limits.submitRate ?? NSNull()
        limits["submit_burst"] = key.limits.effectiveBurst ?? NSNull()
        limits["max_queued"] = key.limits.maxQueued ?? NSNull()
        limits["max_priority"] = key.limits.maxPriority ?? NSNull()
        limits["lanes"] = key.limits.lanes ?? NSNull()
        document["limits"] = limits
        document["last_used_at"] = key.lastUsedAt.map { $0.value / 1000 } ?? NSNull()
        document["revoked_at"] = key.revokedAt.map { $0.value / 1000 } ?? NSNull()
        return document
    }

    /// `value` (a request's `limits` object) applied over `current`.
    static func limits(_ value: Any?, over current: KeyLimits) throws -> KeyLimits {
        guard let value else { return current }
        guard let object = value as? [String: Any] else { throw APIError.invalid("'limits' must be an object", param: "limits") }
        let known: Set<String> = ["submit_rate", "submit_burst", "max_queued", "max_priority", "lanes"]
        if let unknown = object.keys.filter({ !known.contains($0) }).sorted().first {
            throw APIError.invalid("unknown field 'limits.\(unknown)'", param: "limits.\(unknown)")
        }
        func number(_ field: String) throws -> Double?? {
            guard let raw = object[field] else { return .none }  // left out: unchanged
            if raw is NSNull { return .some(nil) }  // null: removed
            guard let number = raw as? NSNumber, type(of: number) != type(of: NSNumber(value: true)) else {
                throw APIError.invalid("'limits.\(field)' must be a number or null", param: "limits.\(field)")
            }
            return .some(number.doubleValue)
        }
        func whole(_ field: String) throws -> Int?? {
            switch try number(field) {
            case .none: return .none
            case .some(nil): return .some(nil)
            case .some(let value?):
                guard let whole = Bounded.int(value, in: -999_999_999_999_999...999_999_999_999_999) else {
                    throw APIError.invalid("'limits.\(field)' must be a whole number", param: "limits.\(field)")
                }
                return .some(whole)
            }
        }
        var limits = current
        if case .some(let rate) = try number("submit_rate") { limits.submitRate = rate }
        if case .some(let burst) = try whole("submit_burst") { limits.submitBurst = burst }
        if case .some(let cap) = try whole("max_queued") { limits.maxQueued = cap }
        if case .some(let most) = try whole("max_priority") { limits.maxPriority = most }
        if let lanes = object["lanes"] {
            if lanes is NSNull {
                limits.lanes = nil
            } else if let names = lanes as? [String] {
                limits.lanes = names
            } else {
                throw APIError.invalid("'limits.lanes' must be a list of lane or provider names, or null", param: "limits.lanes")
            }
        }
        if let problem = limits.problem { throw APIError.invalid("limits.\(problem.field) \(problem.reason)", param: "limits.\(problem.field)") }
        return limits
    }

    /// A JSON object body (application/json, within the upload limit) with only `fields`.
    static func jsonObject(_ request: Request, _ context: SluiceRequestContext, fields: Set<String>) async throws -> [String: Any] {
        if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
            throw APIError(.unsupportedMediaType, type: "unsupported_media_type", message: "send application/json")
        }
        let body = try await request.body.collect(upTo: context.maxUploadSize)
        guard let object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] else {
            throw APIError.invalid("the body must be a JSON object")
        }
        if let unknown = object.keys.filter({ !fields.contains($0) }).sorted().first {
            throw APIError.invalid("unknown field '\(unknown)'", param: unknown)
        }
        return object
    }
}

extension APIError {
    static let noSuchKey = APIError(.notFound, type: "not_found", message: "no API key with that prefix")
}
