import Foundation
import SluiceCore

/// A `POST /v1/jobs` body, parsed strictly: an unknown field is an error that names it, so a
/// typo (`max_attempt`) never silently falls back to a default.
///
/// `{"lane" | "provider" [+ "model"], "request": {…}, "priority", "not_before", "deadline",
///   "max_attempts", "callback_url", "metadata": {…}, "idempotency_key"}`; times are Unix
/// seconds. `request` and `metadata` are kept byte for byte as sent (checked, never re-encoded).
struct JobRequest {
    /// The fields a job may have.
    enum Field: Int, CaseIterable {
        case lane, provider, model, request, priority, notBefore, deadline, maxAttempts, callbackURL, metadata,
            idempotencyKey

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
            }
        }

        /// The field the key token at `key` names, or nil for an unknown key.
        static func named(_ bytes: UnsafeBufferPointer<UInt8>, _ key: Range<Int>) -> Field? {
            allCases.first { JSONScanner.stringToken(bytes, key, equals: $0.name) }
        }
    }

    var spec: JobSpec

    /// From a whole body; `idempotencyKey` (the header) wins over the `idempotency_key` field.
    init(
        json: [UInt8], tenant: String, idempotencyKey: String?, routes: [String: SluiceConfiguration.Route] = [:]
    ) throws(APIError) {
        let result: Result<JobRequest, APIError> = json.withUnsafeBufferPointer { bytes in
            do throws(APIError) {
                return .success(
                    try JobRequest(bytes: bytes, range: 0..<bytes.count, tenant: tenant, idempotencyKey: idempotencyKey, routes: routes))
            } catch { return .failure(error) }
        }
        self = try result.get()
    }

    /// From the object in `bytes[range]` (a whole body, or one line or element of a bulk).
    /// A `model` alone (no lane, no provider) names a route of `routes`: the job goes to one of
    /// its targets, and the route is recorded on the job.
    init(
        bytes: UnsafeBufferPointer<UInt8>, range: Range<Int>, tenant: String, idempotencyKey: String?,
        routes: [String: SluiceConfiguration.Route] = [:]
    ) throws(APIError) {
        // The fields, found by comparing key bytes (no String, no dictionary per job).
        var fields = [JSONScanner.Value?](repeating: nil, count: Field.allCases.count)
        var scanner = JSONScanner(bytes, range: range)
        do {
            try scanner.objectMembers { (key, value) throws(APIError) in
                guard let known = Field.named(bytes, key) else {
                    let name = JSONScanner.decodeString(bytes, key)
                    throw .invalid("unknown field '\(name)'", param: name)
                }
                fields[known.rawValue] = value  // a repeated member: the last one counts, as in most JSON readers
            }
        } catch {
            switch error {
            case .first(let failure):
                throw .invalid(failure.reason == "not an object" ? "the body must be a JSON object" : "the body is not valid JSON")
            case .second(let refusal): throw refusal
            }
        }
        func field(_ which: Field) -> JSONScanner.Value? { fields[which.rawValue] }
        func string(_ which: Field) throws(APIError) -> String? {
            guard let value = field(which), value.kind != .null else { return nil }
            guard value.kind == .string else { throw .invalid("'\(which.name)' must be a string", param: "\(which.name)") }
            return JSONScanner.decodeString(bytes, value.range)
        }
        func int(_ which: Field) throws(APIError) -> Int? {
            guard let value = field(which), value.kind != .null else { return nil }
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
        func raw(_ value: JSONScanner.Value) -> ArraySlice<UInt8> { ArraySlice(UnsafeBufferPointer(rebasing: bytes[value.range])) }

        let lane: String
        var route: SluiceConfiguration.Route? = nil
        let target = (field(.lane), field(.provider), field(.model))
        switch target {
        case (nil, nil, let model?) where model.kind == .string && routes[JSONScanner.decodeString(bytes, model.range)] != nil:
            let chosen = routes[JSONScanner.decodeString(bytes, model.range)]!
            var random = SystemRandomNumberGenerator()
            lane = chosen.pick(using: &random)
            route = chosen
        case (nil, nil, let model?) where model.kind == .string:
            let name = JSONScanner.decodeString(bytes, model.range)
            throw .invalid("no route named '\(name)'; name the target with 'lane', or 'provider' (and 'model')", param: "model")
        case (let name?, nil, nil) where name.kind == .string: lane = JSONScanner.decodeString(bytes, name.range)
        case (nil, let provider?, nil) where provider.kind == .string: lane = JSONScanner.decodeString(bytes, provider.range)
        case (nil, let provider?, let model?) where provider.kind == .string && model.kind == .string:
            lane = JSONScanner.decodeString(bytes, provider.range) + "/" + JSONScanner.decodeString(bytes, model.range)
        case (nil, nil, _): throw .invalid("name the target: 'lane', or 'provider' (and 'model')", param: "lane")
        default: throw .invalid("give either 'lane' or 'provider' (and 'model'), as strings", param: "lane")
        }
        guard let request = field(.request), request.kind == .object else {
            throw .invalid("'request' must be a JSON object (the provider request body)", param: "request")
        }
        // The envelope the job keeps beside its request: {"callback_url": …, "metadata": …}.
        var envelope: [UInt8] = []
        if let callback = field(.callbackURL), callback.kind != .null {
            guard callback.kind == .string, let text = try string(.callbackURL), let url = URL(string: text),
                ["http", "https"].contains(url.scheme ?? ""), url.host != nil
            else { throw .invalid("'callback_url' must be an http(s) URL", param: "callback_url") }
            envelope += Array(#"{"callback_url":"#.utf8) + raw(callback)
        }
        if let metadata = field(.metadata), metadata.kind != .null {
            guard metadata.kind == .object else { throw .invalid("'metadata' must be a JSON object", param: "metadata") }
            envelope += Array((envelope.isEmpty ? #"{"metadata":"# : #","metadata":"#).utf8) + raw(metadata)
        }
        if let route {
            // Route names come from the configuration: plain text, but escaped all the same.
            let name = route.name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            envelope += Array((envelope.isEmpty ? #"{"route":""# : #","route":""#).utf8) + Array(name.utf8) + [UInt8(ascii: "\"")]
        }
        if !envelope.isEmpty { envelope.append(UInt8(ascii: "}")) }
        let fieldKey = try string(.idempotencyKey)
        spec = JobSpec(
            lane: lane, tenant: tenant, priority: try int(.priority) ?? 0, payload: Array(raw(request)),
            idempotencyKey: idempotencyKey ?? fieldKey,
            notBefore: try time(.notBefore),
            deadline: try time(.deadline),
            maxAttempts: try int(.maxAttempts) ?? 3, metadata: envelope)
        do { try spec.validate() } catch {
            guard case .invalid(let field, let reason) = error else { throw .invalid("\(error)") }
            throw .invalid("\(field) \(reason)", param: field)
        }
    }
}
