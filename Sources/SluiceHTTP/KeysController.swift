import Hummingbird
import SluiceCore
import SluiceQueue
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
/// "lanes": ["provider", "provider/model"]}`. A key's own budget (POST and PATCH):
/// `"budget": {"usd", "per": "day" | "month", "on_exceeded": "wait" | "fail"}` or null (none),
/// checked as the configuration's (`BudgetPolicy.parse`).
struct KeysController: Sendable {
    let keys: APIKeyStore
    /// For each key's `open_jobs`.
    let queue: JobQueue
    /// The authentication cache, told of a change to a key so that it is in force at once here
    /// (and, announced through it, in every web process listening for key changes).
    let cache: AuthCache

    // MARK: - Bodies

    /// `POST /v1/keys`.
    struct Create: Decodable, RefusesUnknownFields {
        static let fields: Set<String> = ["tenant", "scopes", "limits", "cache", "budget"]
        let tenant: String
        let scopes: [String]
        let limits: LimitsPatch?
        /// The key's response cache setting (`ResponseCacheDefault`): `false`, `true` or `{ttl, all}`.
        let cache: Patch<JSONValue>
        /// The key's budget (`BudgetPolicy.parse`): `{"usd", "per", "on_exceeded"}`.
        let budget: Patch<JSONValue>

        enum CodingKeys: String, CodingKey { case tenant, scopes, limits, cache, budget }

        init(from decoder: any Decoder) throws {
            try Self.refuseUnknownFields(in: decoder)
            let container = try decoder.container(keyedBy: CodingKeys.self)
            tenant = try container.decode(String.self, forKey: .tenant)
            scopes = try container.decode([String].self, forKey: .scopes)
            limits = try LimitsPatch.field(container, .limits)
            cache = try Patch(container, .cache)
            budget = try Patch(container, .budget)
        }
    }

    /// `PATCH /v1/keys/{prefix}`.
    struct Update: Decodable, RefusesUnknownFields {
        static let fields: Set<String> = ["limits", "cache", "budget"]
        let limits: LimitsPatch?
        /// Left out: unchanged; null: none; else the new setting.
        let cache: Patch<JSONValue>
        /// Left out: unchanged; null: none; else the new budget.
        let budget: Patch<JSONValue>

        enum CodingKeys: String, CodingKey { case limits, cache, budget }

        init(from decoder: any Decoder) throws {
            try Self.refuseUnknownFields(in: decoder)
            limits = try LimitsPatch.field(decoder.container(keyedBy: CodingKeys.self), .limits)
            cache = try Patch(decoder.container(keyedBy: CodingKeys.self), .cache)
            budget = try Patch(decoder.container(keyedBy: CodingKeys.self), .budget)
        }
    }

    /// A body's `budget`, checked as the configuration's (400 naming the member that is
    /// wrong): nil when left out, else the new budget (nil inside: none, for a null).
    static func budgetSetting(_ patch: Patch<JSONValue>) throws -> BudgetPolicy?? {
        switch patch {
        case .unchanged: return nil
        case .removed: return .some(nil)
        case .set(let value):
            do { return .some(try BudgetPolicy.parse(value)) } catch { throw APIError.invalid(error.message, param: error.param) }
        }
    }

    /// A body's `cache`, checked (400 naming the member that is wrong): nil when left out, else
    /// the new setting (nil inside: none, for a null).
    static func cacheSetting(_ patch: Patch<JSONValue>) throws -> ResponseCacheDefault?? {
        switch patch {
        case .unchanged: return nil
        case .removed: return .some(nil)
        case .set(let value):
            do { return .some(try ResponseCacheDefault.parse(value)) } catch { throw APIError.invalid(error.message, param: error.param) }
        }
    }

    /// A request's `limits`: each limit left out (unchanged), null (removed) or given.
    struct LimitsPatch: Decodable, RefusesUnknownFields {
        static let fields: Set<String> = ["submit_rate", "submit_burst", "max_queued", "max_priority", "lanes"]
        let submitRate: Patch<Double>
        let submitBurst: Patch<Double>
        let maxQueued: Patch<Double>
        let maxPriority: Patch<Double>
        let lanes: Patch<[String]>

        enum CodingKeys: String, CodingKey {
            case submitRate = "submit_rate", submitBurst = "submit_burst", maxQueued = "max_queued", maxPriority = "max_priority"
            case lanes
        }

        /// The `limits` field of a body: left out is nil; null is not an object (400).
        static func field<Key: CodingKey>(_ container: KeyedDecodingContainer<Key>, _ key: Key) throws -> LimitsPatch? {
            guard container.contains(key) else { return nil }
            if try container.decodeNil(forKey: key) { throw APIError.invalid("'limits' must be an object", param: "limits") }
            return try container.decode(LimitsPatch.self, forKey: key)
        }

        init(from decoder: any Decoder) throws {
            try Self.refuseUnknownFields(in: decoder, prefix: "limits.")
            let container = try decoder.container(keyedBy: CodingKeys.self)
            submitRate = try Patch(container, .submitRate)
            submitBurst = try Patch(container, .submitBurst)
            maxQueued = try Patch(container, .maxQueued)
            maxPriority = try Patch(container, .maxPriority)
            lanes = try Patch(container, .lanes)
        }

        /// These limits applied over `current`: 400 naming the limit that is not a whole number
        /// where one is needed, or that the limits together do not allow.
        func applied(over current: KeyLimits) throws -> KeyLimits {
            func whole(_ patch: Patch<Double>, _ field: String) throws -> Patch<Int> {
                guard case .set(let value) = patch else { return patch.isRemoved ? .removed : .unchanged }
                guard let whole = Bounded.int(value, in: -999_999_999_999_999...999_999_999_999_999) else {
                    throw APIError.invalid("'limits.\(field)' must be a whole number", param: "limits.\(field)")
                }
                return .set(whole)
            }
            var limits = current
            limits.submitRate = submitRate.applied(to: current.submitRate)
            limits.submitBurst = try whole(submitBurst, "submit_burst").applied(to: current.submitBurst)
            limits.maxQueued = try whole(maxQueued, "max_queued").applied(to: current.maxQueued)
            limits.maxPriority = try whole(maxPriority, "max_priority").applied(to: current.maxPriority)
            limits.lanes = lanes.applied(to: current.lanes)
            if let problem = limits.problem {
                throw APIError.invalid("limits.\(problem.field) \(problem.reason)", param: "limits.\(problem.field)")
            }
            return limits
        }
    }

    /// A key's record as the API shows it (never its secret, but once, on creation, in `key`).
    struct KeyDocument: ResponseEncodable {
        struct Limits: Encodable {
            @ExplicitNull var submitRate: Double?
            @ExplicitNull var submitBurst: Int?
            @ExplicitNull var maxQueued: Int?
            @ExplicitNull var maxPriority: Int?
            @ExplicitNull var lanes: [String]?

            enum CodingKeys: String, CodingKey {
                case submitRate = "submit_rate", submitBurst = "submit_burst", maxQueued = "max_queued", maxPriority = "max_priority"
                case lanes
            }
        }

        var object = "api_key"
        let prefix: String
        let tenant: String
        let scopes: [String]
        let createdAt: Int64
        let openJobs: Int
        let status: String
        let limits: Limits
        /// The key's response cache setting: `false`, `{"ttl": <seconds>, "all": …}`, or null (none).
        @ExplicitNull var cache: JSONValue?
        /// The key's own budget: `{"usd", "per", "on_exceeded"}`, or null (none).
        @ExplicitNull var budget: JSONValue?
        @ExplicitNull var lastUsedAt: Int64?
        @ExplicitNull var revokedAt: Int64?
        /// The secret, on creation only (left out otherwise).
        var key: String?

        enum CodingKeys: String, CodingKey {
            case object, prefix, tenant, scopes, status, limits, key, cache, budget
            case createdAt = "created_at", openJobs = "open_jobs", lastUsedAt = "last_used_at", revokedAt = "revoked_at"
        }

        init(_ key: APIKey, openJobs: Int, secret: String? = nil) {
            prefix = key.prefix
            tenant = key.tenant
            scopes = key.scopes.sorted().map(\.rawValue)
            createdAt = key.createdAt.value / 1000
            self.openJobs = openJobs
            status = key.isRevoked ? "revoked" : "active"
            limits = Limits(
                submitRate: key.limits.submitRate, submitBurst: key.limits.effectiveBurst, maxQueued: key.limits.maxQueued,
                maxPriority: key.limits.maxPriority, lanes: key.limits.lanes)
            cache = key.cache?.json
            budget = key.budget?.json
            lastUsedAt = key.lastUsedAt.map { $0.value / 1000 }
            revokedAt = key.revokedAt.map { $0.value / 1000 }
            self.key = secret
        }
    }

    // MARK: - Routes

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.post("keys", use: create)
        group.get("keys", use: list)
        group.get("keys/:prefix") { _, context in try await document(try await namedKey(context)) }
        group.patch("keys/:prefix", use: update)
        group.delete("keys/:prefix", use: revoke)
    }

    @Sendable func create(_ request: Request, _ context: SluiceRequestContext) async throws -> EditedResponse<KeyDocument> {
        _ = try context.require(.admin)
        let body = try await request.decode(as: Create.self, context: context)
        let scopes: Set<Scope>
        do { scopes = try Scope.parseList(body.scopes.joined(separator: ",")) } catch {
            throw APIError.invalid("\(error)", param: "scopes")
        }
        let limits = try body.limits?.applied(over: KeyLimits()) ?? KeyLimits()
        let cacheSetting = try Self.cacheSetting(body.cache) ?? nil
        let budgetSetting = try Self.budgetSetting(body.budget) ?? nil
        var created: (secret: String, key: APIKey)
        let tenant = body.tenant
        do { created = try await offPool { try keys.create(tenant: tenant, scopes: scopes, limits: limits) } } catch StoreError.invalid(let field, let reason) {
            throw APIError.invalid("\(field) \(reason)", param: field)
        }
        // Set before the secret is returned: no job can be submitted with the key before.
        if let cacheSetting { let prefix = created.key.prefix; created.key = try await offPool { try keys.setCache(prefix: prefix, cacheSetting) } ?? created.key }
        if let budgetSetting { let prefix = created.key.prefix; created.key = try await offPool { try keys.setBudget(prefix: prefix, budgetSetting) } ?? created.key }
        // Announced too (no process has it cached; a listener may keep more than positive entries one day).
        await cache.keyChanged(prefix: created.key.prefix, logger: context.logger)
        return EditedResponse(status: .created, response: try await document(created.key, secret: created.secret))
    }

    @Sendable func list(_ request: Request, _ context: SluiceRequestContext) async throws -> ListDocument<KeyDocument> {
        _ = try context.require(.admin)
        let tenant = request.uri.queryParameters["tenant"].map(String.init)
        var data: [KeyDocument] = []
        for key in try await offPool({ try keys.list(tenant: tenant) }) { data.append(try await document(key)) }
        return ListDocument(data: data)
    }

    @Sendable func update(_ request: Request, _ context: SluiceRequestContext) async throws -> KeyDocument {
        let key = try await namedKey(context)
        let body = try await request.decode(as: Update.self, context: context)
        let limits = try body.limits?.applied(over: key.limits) ?? key.limits
        let cacheSetting = try Self.cacheSetting(body.cache)
        let budgetSetting = try Self.budgetSetting(body.budget)
        var updated: APIKey?
        do { updated = try await offPool { try keys.setLimits(prefix: key.prefix, limits) } } catch StoreError.invalid(let field, let reason) {
            throw APIError.invalid("\(field) \(reason)", param: "limits.\(field)")
        }
        if let cacheSetting { updated = try await offPool { try keys.setCache(prefix: key.prefix, cacheSetting) } }
        if let budgetSetting { updated = try await offPool { try keys.setBudget(prefix: key.prefix, budgetSetting) } }
        guard let updated else { throw APIError.noSuchKey }
        // In force at once here, and in every process listening for key changes.
        await cache.keyChanged(prefix: key.prefix, logger: context.logger)
        return try await document(updated)
    }

    @Sendable func revoke(_ request: Request, _ context: SluiceRequestContext) async throws -> KeyDocument {
        let key = try await namedKey(context)
        _ = try await offPool { try keys.revoke(prefix: key.prefix) }
        await cache.keyChanged(prefix: key.prefix, logger: context.logger)
        guard let revoked = try await offPool({ try keys.find(prefix: key.prefix) }) else { throw APIError.noSuchKey }
        return try await document(revoked)
    }

    // MARK: - Helpers

    /// The key named by the path's `prefix`, for an admin caller.
    private func namedKey(_ context: SluiceRequestContext) async throws -> APIKey {
        _ = try context.require(.admin)
        guard let prefix = context.parameters.get("prefix"), let key = try await offPool({ try keys.find(prefix: prefix) }) else {
            throw APIError.noSuchKey
        }
        return key
    }

    private func document(_ key: APIKey, secret: String? = nil) async throws -> KeyDocument {
        KeyDocument(key, openJobs: try await queue.openJobs(key: key.id), secret: secret)
    }
}

extension Patch {
    var isRemoved: Bool {
        if case .removed = self { return true }
        return false
    }
}

extension APIError {
    static let noSuchKey = APIError(.notFound, type: "not_found", message: "no API key with that prefix")
}
