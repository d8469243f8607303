import Foundation
import SluiceCore

/// A `POST /v1/jobs` body, parsed strictly: an unknown field is an error that names it, so a
/// typo (`max_attempt`) never silently falls back to a default.
///
/// `{"lane" | "provider" [+ "model"] | "model", "request": {…}, "priority", "not_before",
///   "deadline", "max_attempts", "callback_url", "metadata": {…}, "idempotency_key", "cache"}`; times are
/// Unix seconds. `request` and `metadata` are kept byte for byte as sent (checked, never
/// re-encoded).
///
/// This is a hot path (single and bulk submit): it reads with the strict byte scanner
/// (`JSONScanner`) and writes the job's envelope with its hand-written encoder, so a job costs
/// no Foundation JSON round trip. Two steps: `Fields` parses (syntax and types), `spec` decides
/// (where the job runs, what its envelope says, the defaults).
struct JobRequest {
    /// The fields a job may have.
    enum Field: Int, CaseIterable {
        case lane, provider, model, request, priority, notBefore, deadline, maxAttempts, callbackURL, metadata,
            idempotencyKey, cache, mode

        var name: StaticString {
            switch self {
            case .lane: "lane"
            case .provider: "provider"
            case .model: "model"
            case .request: "request"
            case .priority: "priority"
            case .notBefore: "not_before"
            case .deadline: "deadline"
            case .maxAttempts: "max_attempts"
            case .callbackURL: "callback_url"
            case .metadata: "metadata"
            case .idempotencyKey: "idempotency_key"
            case .cache: "cache"
            case .mode: "mode"
            }
        }

        /// The field the key token at `key` names, or nil for an unknown key.
        static func named(_ bytes: UnsafeBufferPointer<UInt8>, _ key: Range<Int>) -> Field? {
            allCases.first { JSONScanner.stringToken(bytes, key, equals: $0.name) }
        }
    }

    /// A job object's fields, parsed and of the right types; nothing decided yet.
    struct Fields {
        var target: ModelDirectory.Target
        var request: [UInt8]
        var priority: Int?
        var notBefore: UnixMillis?
        var deadline: UnixMillis?
        var maxAttempts: Int?
        var callbackURL: String?
        var metadata: RawJSON?
        var idempotencyKey: String?
        /// The job's `cache` value, parsed (decided in `spec`, against the config's defaults).
        var cache: JSONValue?
        /// `"mode": "batch"` (through the provider's batch API, when its provider has one) or `"live"` (never).
        var mode: JobMode?
    }

    var spec: JobSpec

    /// From a whole body; `idempotencyKey` (the header) wins over the `idempotency_key` field.
    init(
        json: [UInt8], tenant: String, idempotencyKey: String?, directory: ModelDirectory, cache: ResponseCacheSettings = ResponseCacheSettings()
    ) throws(APIError) {
        let result: Result<JobRequest, APIError> = json.withUnsafeBufferPointer { bytes in
            do throws(APIError) {
                return .success(
                    try JobRequest(
                        bytes: bytes, range: 0..<bytes.count, tenant: tenant, idempotencyKey: idempotencyKey, directory: directory, cache: cache))
            } catch { return .failure(error) }
        }
        self = try result.get()
    }

    /// From a whole body, with `routes` as the only way a model alone resolves.
    init(
        json: [UInt8], tenant: String, idempotencyKey: String?, routes: [String: SluiceConfiguration.Route] = [:]
    ) throws(APIError) {
        try self.init(json: json, tenant: tenant, idempotencyKey: idempotencyKey, directory: ModelDirectory(providers: [:], routes: routes))
    }

    /// From the object in `bytes[range]` (a whole body, or one line or element of a bulk).
    init(
        bytes: UnsafeBufferPointer<UInt8>, range: Range<Int>, tenant: String, idempotencyKey: String?, directory: ModelDirectory,
        cache: ResponseCacheSettings = ResponseCacheSettings()
    ) throws(APIError) {
        spec = try Self.spec(Self.fields(bytes, range), tenant: tenant, idempotencyKey: idempotencyKey, directory: directory, cache: cache)
    }

    /// The policy: the lane the target resolves to (a model alone: `directory`, the one resolver;
    /// a route is recorded on the job), the callback URL's scheme, the envelope, the defaults,
    /// and the spec's own checks.
    static func spec(
        _ fields: Fields, tenant: String, idempotencyKey: String?, directory: ModelDirectory, cache: ResponseCacheSettings = ResponseCacheSettings()
    ) throws(APIError) -> JobSpec {
        guard let (lane, route, why) = directory.lane(for: fields.target, deadline: fields.deadline?.value) else {
            guard case .model(let name) = fields.target else { throw .invalid("no lane", param: "lane") }
            throw .invalid(ModelDirectory.unknown(name) + "; or name the target with 'lane', or 'provider' (and 'model')", param: "model")
        }
        if let text = fields.callbackURL {
            guard let url = URL(string: text), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                throw .invalid("'callback_url' must be an http(s) URL", param: "callback_url")
            }
        }
        let policy: ResponseCachePolicy?
        do { policy = try cache.policy(for: fields.cache, route: route) } catch { throw .invalid(error.message, param: error.param) }
        var spec = JobSpec(
            lane: lane, tenant: tenant, priority: fields.priority ?? 0, payload: fields.request,
            idempotencyKey: idempotencyKey ?? fields.idempotencyKey, notBefore: fields.notBefore, deadline: fields.deadline,
            maxAttempts: fields.maxAttempts ?? 3,
            envelope: JobEnvelope(
                callbackURL: fields.callbackURL, metadata: fields.metadata, route: route,
                cache: policy.flatMap { policy in
                    // Scoped by tenant unless the config shares a scope: a tenant never gets
                    // another tenant's cached answer.
                    ResponseCacheKey(lane: lane, scope: cache.scope(tenant: tenant), body: fields.request, policy: policy)
                        .map { ResponseCacheTicket(key: $0, ttl: policy.ttl) }
                }))
        spec.why = why
        // The one decision whether the job goes through its provider's batch API (kept with the job).
        spec.providerBatch = directory.providerBatch(lane: lane, mode: fields.mode, route: route, deadline: fields.deadline)
        do { try spec.validate() } catch {
            guard case .invalid(let field, let reason) = error else { throw .invalid("\(error)") }
            throw .invalid("\(field) \(reason)", param: field)
        }
        return spec
    }

    /// The parsing: the object's members, found by comparing key bytes (no String, no
    /// dictionary per job), each checked for its type.
    static func fields(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) throws(APIError) -> Fields {
        var found = [JSONScanner.Value?](repeating: nil, count: Field.allCases.count)
        var scanner = JSONScanner(bytes, range: range)
        do {
            try scanner.objectMembers { (key, value) throws(APIError) in
                guard let known = Field.named(bytes, key) else {
                    let name = JSONScanner.decodeString(bytes, key)
                    throw .invalid("unknown field '\(name)'", param: name)
                }
                found[known.rawValue] = value  // a repeated member: the last one counts, as in most JSON readers
            }
        } catch {
            switch error {
            case .first(let failure):
                throw .invalid(failure.reason == "not an object" ? "the body must be a JSON object" : "the body is not valid JSON")
            case .second(let refusal): throw refusal
            }
        }
        func field(_ which: Field) -> JSONScanner.Value? { found[which.rawValue] }
        func present(_ which: Field) -> JSONScanner.Value? { field(which).flatMap { $0.kind == .null ? nil : $0 } }
        func string(_ which: Field) throws(APIError) -> String? {
            guard let value = present(which) else { return nil }
            guard value.kind == .string else { throw .invalid("'\(which.name)' must be a string", param: "\(which.name)") }
            return JSONScanner.decodeString(bytes, value.range)
        }
        func int(_ which: Field) throws(APIError) -> Int? {
            guard let value = present(which) else { return nil }
            guard value.kind == .number, let number = JSONScanner.wholeNumber(bytes, value.range) else {
                let range = switch which {
                case .priority: "from \(JobSpec.priorityRange.lowerBound) to \(JobSpec.priorityRange.upperBound)"
                case .maxAttempts: "from 1 to 1000"
                default: "of Unix seconds from 0 to \(Int64(Bounded.maxUnixSeconds))"
                }
                throw .invalid("'\(which.name)' must be a whole number \(range)", param: "\(which.name)")
            }
            return number
        }
        /// A time in Unix seconds (a whole number), within 1970...9999.
        func time(_ which: Field) throws(APIError) -> UnixMillis? {
            guard let seconds = try int(which) else { return nil }
            guard let millis = Bounded.unixMillis(seconds: seconds) else {
                throw .invalid("'\(which.name)' must be a time in Unix seconds, from 0 to \(Int64(Bounded.maxUnixSeconds))", param: "\(which.name)")
            }
            return UnixMillis(millis)
        }
        func text(_ value: JSONScanner.Value) -> String { JSONScanner.decodeString(bytes, value.range) }

        let target: ModelDirectory.Target
        switch (field(.lane), field(.provider), field(.model)) {
        case (nil, nil, let model?) where model.kind == .string: target = .model(text(model))
        case (let name?, nil, nil) where name.kind == .string: target = .lane(text(name))
        case (nil, let provider?, nil) where provider.kind == .string: target = .provider(text(provider), model: nil)
        case (nil, let provider?, let model?) where provider.kind == .string && model.kind == .string:
            target = .provider(text(provider), model: text(model))
        case (nil, nil, _): throw .invalid("name the target: 'lane', or 'provider' (and 'model')", param: "lane")
        default: throw .invalid("give either 'lane' or 'provider' (and 'model'), as strings", param: "lane")
        }
        guard let request = field(.request), request.kind == .object else {
            throw .invalid("'request' must be a JSON object (the provider request body)", param: "request")
        }
        var callbackURL: String?
        if present(.callbackURL) != nil {
            guard let url = try? string(.callbackURL) else { throw .invalid("'callback_url' must be an http(s) URL", param: "callback_url") }
            callbackURL = url
        }
        var metadata: RawJSON?
        if let value = present(.metadata) {
            guard value.kind == .object else { throw .invalid("'metadata' must be a JSON object", param: "metadata") }
            metadata = RawJSON(unchecked: Array(bytes[value.range]))
        }
        var cache: JSONValue?
        if let value = present(.cache) {
            // Only a job that names `cache` pays for this parse.
            do { cache = try JSONValue(parsing: Array(bytes[value.range])) } catch { throw .invalid("'cache' is not valid JSON", param: "cache") }
        }
        var fields = Fields(
            target: target, request: Array(bytes[request.range]), priority: try int(.priority), notBefore: try time(.notBefore),
            deadline: try time(.deadline), maxAttempts: try int(.maxAttempts), callbackURL: callbackURL, metadata: metadata,
            idempotencyKey: try string(.idempotencyKey))
        fields.cache = cache
        if present(.mode) != nil {
            guard let text = try? string(.mode), let mode = JobMode(rawValue: text) else {
                throw .invalid("'mode' must be \"batch\" or \"live\"", param: "mode")
            }
            fields.mode = mode
        }
        return fields
    }
}
