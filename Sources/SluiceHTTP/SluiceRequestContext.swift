import Foundation
import Hummingbird
import SluiceCore

/// The request context: Hummingbird's core, plus the API key that authenticated the request.
public struct SluiceRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `AuthMiddleware` for every route behind it.
    public var key: APIKey?

    /// The client's IP address, as the connection's peer (nil when the channel has none).
    public let peer: String?

    public init(source: Source) {
        coreContext = .init(source: source)
        key = nil
        peer = source.channel.remoteAddress?.ipAddress
    }

    /// Request bodies above this are refused with 413.
    public var maxUploadSize: Int { 1 << 20 }

    /// Codable bodies are read and written as the API's JSON (see `APIJSON`).
    public var requestDecoder: APIJSON.Decoder { APIJSON.Decoder() }
    public var responseEncoder: APIJSON.Encoder { APIJSON.Encoder() }

    /// The authenticated key, which must have `scope` (admin implies every scope).
    func require(_ scope: Scope) throws -> APIKey {
        guard let key else { throw APIError(.unauthorized, type: "authentication", message: "an API key is required") }
        guard key.scopes.contains(scope) || key.scopes.contains(.admin) else {
            throw APIError(.forbidden, type: "permission", message: "this key lacks the '\(scope.rawValue)' scope")
        }
        return key
    }
}
