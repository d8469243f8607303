import Foundation

/// Where and how to connect to Redis. Built from a URL:
/// `redis://[user:pass@]host[:port][/db]`, `unix:///path/to/redis.sock[?db=N&password=P]`, or
/// `redis+sentinel://[user:pass@]host:port[,host:port…]/<master>[/db]` (Sentinel: every connection
/// asks the sentinels where the primary of `<master>` is now).
///
/// Any form takes `?password_file=/path`: the password is read from that file (a mounted
/// secret), its trailing newline dropped, when the URL has none of its own.
public struct RedisConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// Where the server listens.
    public enum Endpoint: Sendable, Hashable {
        case tcp(host: String, port: Int)
        case unix(path: String)
        /// The primary that these sentinels name for `master`, asked at every (re)connect.
        case sentinel(nodes: [SentinelNode], master: String)
    }

    /// One sentinel's address.
    public struct SentinelNode: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
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
        if url.lowercased().hasPrefix("redis+sentinel://") {
            try self.init(sentinelURL: url)
        } else {
            try self.init(serverURL: url)
        }
    }

    /// `redis://…` or `unix://…`.
    private init(serverURL url: String) throws(RedisError) {
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
            throw .invalidURL("scheme '\(scheme)' is not redis://, unix:// or redis+sentinel://")
        }
        if let db = query["db"] {
            guard let value = Int(db), value >= 0 else { throw .invalidURL("db '\(db)' is not a number") }
            database = value
        }
        let user = components.user.flatMap { $0.removingPercentEncoding ?? $0 }
        username = (user?.isEmpty ?? true) ? nil : user
        password = components.password.flatMap { $0.removingPercentEncoding ?? $0 } ?? query["password"]
        if password == nil, let file = query["password_file"] { password = try Self.readPassword(from: file) }
        self.database = database
        connectTimeout = .seconds(2)
        commandTimeout = .seconds(10)
    }

    /// `redis+sentinel://[user:pass@]host:port[,host:port…]/<master>[/db][?db=N&password_file=P]`.
    /// A sentinel without a port is asked on 26379.
    private init(sentinelURL url: String) throws(RedisError) {
        var rest = Substring(url.dropFirst("redis+sentinel://".count))
        var queryItems: [URLQueryItem] = []
        if let mark = rest.firstIndex(of: "?") {
            queryItems = URLComponents(string: "x:?" + rest[rest.index(after: mark)...])?.queryItems ?? []
            rest = rest[..<mark]
        }
        let query = Dictionary(queryItems.map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = rest[..<slash]
        let path = rest[slash...].split(separator: "/")
        var user: String?
        var secret: String?
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            authority = authority[authority.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                user = String(userInfo[..<colon]).removingPercentEncoding
                secret = String(userInfo[userInfo.index(after: colon)...]).removingPercentEncoding
            } else {
                user = String(userInfo).removingPercentEncoding
            }
        }
        var nodes: [SentinelNode] = []
        for item in authority.split(separator: ",") {
            guard let parsed = URLComponents(string: "redis://" + item), var host = parsed.host, !host.isEmpty else {
                throw .invalidURL("sentinel '\(item)' is not host:port")
            }
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            let port = parsed.port ?? 26379
            guard (1...65535).contains(port) else { throw .invalidURL("sentinel port \(port) out of range") }
            nodes.append(SentinelNode(host: host, port: port))
        }
        guard !nodes.isEmpty else { throw .invalidURL("no sentinel in the URL") }
        guard let master = path.first.map(String.init), !master.isEmpty else {
            throw .invalidURL("no master name in the URL (redis+sentinel://host:port/<master>)")
        }
        guard path.count <= 2 else { throw .invalidURL("the path is /<master>[/db]") }
        var database = 0
        if let db = path.dropFirst().first.map(String.init) ?? query["db"] {
            guard let value = Int(db), value >= 0 else { throw .invalidURL("db '\(db)' is not a number") }
            database = value
        }
        endpoint = .sentinel(nodes: nodes, master: master)
        username = (user?.isEmpty ?? true) ? nil : user
        password = secret ?? query["password"]
        if password == nil, let file = query["password_file"] { password = try Self.readPassword(from: file) }
        self.database = database
        connectTimeout = .seconds(2)
        commandTimeout = .seconds(10)
    }

    /// A password file's first line (a mounted secret ends with a newline, or not). Its contents
    /// never appear in an error.
    private static func readPassword(from path: String) throws(RedisError) -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .invalidURL("cannot read the password_file \(path)")
        }
        let text = String(decoding: data, as: UTF8.self)
        let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let password = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
        guard !password.isEmpty else { throw .invalidURL("the password_file \(path) is empty") }
        return password
    }

    /// The endpoint and database, never the password.
    public var description: String {
        let auth = password == nil ? "" : "\(username ?? ""):***@"
        switch endpoint {
        case .tcp(let host, let port): return "redis://\(auth)\(host):\(port)/\(database)"
        case .unix(let path): return "unix://\(path)?db=\(database)\(password == nil ? "" : "&password=***")"
        case .sentinel(let nodes, let master):
            return "redis+sentinel://\(auth)\(nodes.map(\.description).joined(separator: ","))/\(master)/\(database)"
        }
    }

    /// A URL with any password masked, for messages.
    public static func redact(_ url: String) -> String {
        guard let at = url.lastIndex(of: "@"), let scheme = url.range(of: "://") else { return url }
        return String(url[..<scheme.upperBound]) + "***" + String(url[at...])
    }
}
