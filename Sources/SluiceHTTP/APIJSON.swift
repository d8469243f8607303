import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore

/// How the API reads and writes its Codable bodies (`request.decode(as:context:)`, and
/// `ResponseEncodable` answers).
///
/// - Answers are `application/json` written by the API's one encoder configuration
///   (`JSONObjectWriter.encoder()`: sorted keys, `/` not escaped), so they read byte for byte as
///   the answers `JSONObjectWriter` writes directly (a job, a submit's 202). Field
///   names are spelled out by each type's `CodingKeys` (snake_case), never converted by the
///   encoder: a client's own map (`metadata`) keeps its keys as sent.
/// - A body that cannot be read is our 400 naming the field (`APIError`), not Hummingbird's
///   default message; a field the type does not know is refused (`RefusesUnknownFields`).
public enum APIJSON {
    public struct Encoder: ResponseEncoder {
        public init() {}

        public func encode(_ value: some Encodable, from request: Request, context: some RequestContext) throws -> Response {
            let body = try JSONObjectWriter.encode(value)
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
    }

    public struct Decoder: RequestDecoder {
        public init() {}

        public func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext) async throws -> T {
            if let type = request.headers[.contentType], !type.lowercased().hasPrefix("application/json") {
                throw APIError(.unsupportedMediaType, type: "unsupported_media_type", message: "send application/json")
            }
            let body = try await request.body.collect(upTo: context.maxUploadSize)
            return try APIJSON.decode(T.self, from: Data(buffer: body))
        }
    }

    /// `T` from JSON bytes; a `DecodingError` becomes a 400 naming the field at fault.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: data) } catch let error as DecodingError { throw APIError(error) }
    }
}

extension APIError {
    /// The 400 for a body that does not decode: the field's dotted path as `param`.
    init(_ error: DecodingError) {
        // `param` names the field (`limits.lanes`); the message adds the element (`limits.lanes[2]`).
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.filter { $0.intValue == nil }.map(\.stringValue).joined(separator: ".")
        }
        func place(_ codingPath: [any CodingKey]) -> String {
            codingPath.reduce(into: "") { text, key in
                if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
            }
        }
        func kind(_ type: Any.Type) -> String {
            switch type {
            case is String.Type: "a string"
            case is Bool.Type: "true or false"
            case is Double.Type, is Float.Type: "a number"
            case is Int.Type, is Int64.Type: "a whole number"
            case is [String].Type: "an array of strings"
            case is [String: String].Type: "an object of string values"
            case is [Any].Type: "an array"
            default: "an object"
            }
        }
        switch error {
        case .typeMismatch(let type, let context) where context.codingPath.isEmpty, .valueNotFound(let type, let context) where context.codingPath.isEmpty:
            _ = type
            self = .invalid("the body must be a JSON object")
        case .typeMismatch(let type, let context):
            self = .invalid("'\(place(context.codingPath))' must be \(kind(type))", param: path(context.codingPath))
        case .valueNotFound(let type, let context):
            self = .invalid("'\(place(context.codingPath))' must be \(kind(type)), not null", param: path(context.codingPath))
        case .keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            self = .invalid("'\(field)' is required", param: field)
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            self = .invalid("the body is not valid JSON")
        case .dataCorrupted(let context):
            self = .invalid("'\(place(context.codingPath))' is not valid: \(context.debugDescription)", param: path(context.codingPath))
        @unknown default:
            self = .invalid("the body could not be read")
        }
    }
}

/// A request body that refuses fields it does not know (a typo must not pass unnoticed).
protocol RefusesUnknownFields {
    /// The field names the body may hold.
    static var fields: Set<String> { get }
}

extension RefusesUnknownFields {
    /// 400 naming the first unknown field (sorted), as `prefix` + its name (`noun`: what the
    /// message calls it: OpenAI's batch API says "parameter").
    static func refuseUnknownFields(in decoder: any Swift.Decoder, prefix: String = "", noun: String = "field") throws {
        let container = try decoder.container(keyedBy: AnyField.self)
        if let unknown = container.allKeys.map(\.stringValue).filter({ !fields.contains($0) }).sorted().first {
            throw APIError.invalid("unknown \(noun) '\(prefix)\(unknown)'", param: prefix + unknown)
        }
    }
}

/// Any field name, to list the fields a body holds.
struct AnyField: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// A field of a partial update: left out (unchanged), `null` (removed), or a new value.
enum Patch<Value: Decodable & Sendable>: Sendable {
    case unchanged, removed, set(Value)

    /// The field `key` of `container`.
    init<Key: CodingKey>(_ container: KeyedDecodingContainer<Key>, _ key: Key) throws {
        if !container.contains(key) {
            self = .unchanged
        } else if try container.decodeNil(forKey: key) {
            self = .removed
        } else {
            self = .set(try container.decode(Value.self, forKey: key))
        }
    }

    /// `current` with the patch applied.
    func applied(to current: Value?) -> Value? {
        switch self {
        case .unchanged: current
        case .removed: nil
        case .set(let value): value
        }
    }
}

/// An optional written as `null` when absent (synthesized Encodable leaves nil fields out; the
/// API's documents name some fields with a null value).
@propertyWrapper
struct ExplicitNull<Value: Encodable & Sendable>: Encodable, Sendable {
    var wrappedValue: Value?

    init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}
