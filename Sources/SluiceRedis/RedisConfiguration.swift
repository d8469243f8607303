import Foundation

/// Where and how to connect to Redis. Built from a URL:
/// `redis://[user:pass@]host[:port][/db]` or `unix:///path/to/redis.sock[?db=N&password=P]`.
public struct RedisConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// Where the server listens.
    public enum Endpoint: Sendable, Hashable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var endpoint: Endpoint
    public var username: String?
    public var password: String?
    public var database: Int
    /// How long a connect may take before it fails with `RedisError.connectionFailed`.
    public var connectTimeout: Duration
    /// How long a reply may take before the command fails with `RedisError.timeout`.
    public var commandTimeout: Duration

    public init(
        endpoint: Endpoint, username: String? = nil, password: String? = nil, database: Int = 0,
        connectTimeout: Duration = .seconds(2), commandTimeout: Duration = .seconds(10)
    ) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
    }

    /// Parses a Redis URL. Throws `RedisError.invalidURL` naming what is wrong.
    public init(url: String) throws(RedisError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw .invalidURL("cannot parse '\(RedisConfiguration.redact(url))'")
        }
        let query = Dictionary(
            (components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        var database = 0
        switch scheme {
        case "redis":
            guard let host = components.host, !host.isEmpty else { throw .invalidURL("no host in the URL") }
            let port = components.port ?? 6379
            guard (1...65535).contains(port) else { throw .invalidURL("port \(port) out of range") }
            endpoint = .tcp(host: host, port: port)
            let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            if !path.isEmpty {
                guard let db = Int(path), db >= 0 else { throw .invalidURL("database '\(path)' is not a number") }
                database = db
            }
        case "unix":
            guard !components.path.isEmpty else { throw .invalidURL("no socket path in the URL") }
            endpoint = .unix(path: components.path)
        default:
            throw .invalidURL("scheme '\(scheme)' is not redis:// or unix://")
        }
        if let db = query["db"] {
            guard let value = Int(db), value >= 0 else { throw .invalidURL("db '\(db)' is not a number") }
            database = value
        }
        let user = components.user.flatMap { $0.removingPercentEncoding ?? $0 }
        username = (user?.isEmpty ?? true) ? nil : user
        password = components.password.flatMap { $0.removingPercentEncoding ?? $0 } ?? query["password"]
        self.database = database
        connectTimeout = .seconds(2)
        commandTimeout = .seconds(10)
    }

    /// The endpoint and database, never the password.
    public var description: String {
        let auth = password == nil ? "" : "\(username ?? ""):***@"
        switch endpoint {
        case .tcp(let host, let port): return "redis://\(auth)\(host):\(port)/\(database)"
        case .unix(let path): return "unix://\(path)?db=\(database)\(password == nil ? "" : "&password=***")"
        }
    }

    /// A URL with any password masked, for messages.
    public static func redact(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://") else { return url }
        return String(url[..<scheme.upperBound]) + "***" + String(url[at...])
    }
}
