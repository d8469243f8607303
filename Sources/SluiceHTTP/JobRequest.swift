import Foundation
import SluiceCore

/// A `POST /v1/jobs` body, parsed strictly: an unknown field is an error that names it, so a
/// typo (`max_attempt`) never silently falls back to a default.
///
/// `{"lane" | "provider" [+ "model"], "request": {…}, "priority", "not_before", "deadline",
///   "max_attempts", "callback_url", "metadata": {…}}`; times are Unix seconds.
struct JobRequest {
    static let fields: Set<String> = [
        "lane", "provider", "model", "request", "priority", "not_before", "deadline", "max_attempts",
        "callback_url", "metadata", "idempotency_key",
    ]

    var spec: JobSpec

    init(json: Data, tenant: String, idempotencyKey: String?) throws(APIError) {
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: json) } catch {
            throw .invalid("the body is not valid JSON")
        }
        guard let object = parsed as? [String: Any] else { throw .invalid("the body must be a JSON object") }
        try self.init(object: object, tenant: tenant, idempotencyKey: idempotencyKey)
    }

    /// From a parsed object; `idempotencyKey` (the header) wins over the `idempotency_key` field.
    init(object: [String: Any], tenant: String, idempotencyKey: String?) throws(APIError) {
        if let unknown = object.keys.filter({ !Self.fields.contains($0) }).sorted().first {
            throw .invalid("unknown field '\(unknown)'", param: unknown)
        }
        let lane: String
        switch (object["lane"], object["provider"], object["model"]) {
        case (let name as String, nil, nil): lane = name
        case (nil, let provider as String, nil): lane = provider
        case (nil, let provider as String, let model as String): lane = provider + "/" + model
        case (nil, nil, _): throw .invalid("name the target: 'lane', or 'provider' (and 'model')", param: "lane")
        default: throw .invalid("give either 'lane' or 'provider' (and 'model'), as strings", param: "lane")
        }
        guard let request = object["request"], request is [String: Any] else {
            throw .invalid("'request' must be a JSON object (the provider request body)", param: "request")
        }
        var envelope: [String: Any] = [:]
        if let metadata = object["metadata"] {
            guard metadata is [String: Any] else { throw .invalid("'metadata' must be a JSON object", param: "metadata") }
            envelope["metadata"] = metadata
        }
        if let callback = object["callback_url"] {
            guard let text = callback as? String, let url = URL(string: text), ["http", "https"].contains(url.scheme ?? ""),
                url.host != nil
            else { throw .invalid("'callback_url' must be an http(s) URL", param: "callback_url") }
            envelope["callback_url"] = text
        }
        if let field = object["idempotency_key"], !(field is String) {
            throw .invalid("'idempotency_key' must be a string", param: "idempotency_key")
        }
        spec = JobSpec(
            lane: lane, tenant: tenant, priority: try Self.int(object, "priority") ?? 0,
            payload: Array((try? JSONSerialization.data(withJSONObject: request)) ?? Data()),
            idempotencyKey: idempotencyKey ?? (object["idempotency_key"] as? String),
            notBefore: try Self.int(object, "not_before").map { UnixMillis(Int64($0) * 1000) },
            deadline: try Self.int(object, "deadline").map { UnixMillis(Int64($0) * 1000) },
            maxAttempts: try Self.int(object, "max_attempts") ?? 3,
            metadata: envelope.isEmpty ? [] : Array((try? JSONSerialization.data(withJSONObject: envelope, options: [.sortedKeys])) ?? Data()))
        do { try spec.validate() } catch {
            guard case .invalid(let field, let reason) = error else { throw .invalid("\(error)") }
            throw .invalid("\(field) \(reason)", param: field)
        }
    }

    /// A whole number, if the field is there; an error naming it if it is not a whole number.
    private static func int(_ object: [String: Any], _ field: String) throws(APIError) -> Int? {
        guard let value = object[field], !(value is NSNull) else { return nil }
        // JSON booleans arrive as NSNumbers of their own class (`true is Bool`, but so is `1`).
        guard let number = value as? NSNumber, type(of: number) != booleanClass,
            number.doubleValue == number.doubleValue.rounded(), abs(number.doubleValue) < 1e15
        else { throw .invalid("'\(field)' must be a whole number", param: field) }
        return number.intValue
    }

    private static let booleanClass = type(of: NSNumber(value: true))
}
