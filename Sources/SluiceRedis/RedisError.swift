/// What went wrong talking to Redis, and so what a caller may do about it.
public enum RedisError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The Redis URL could not be understood. Fix the configuration.
    case invalidURL(String)
    /// No connection could be made (refused, unreachable, or the connect timeout passed).
    /// Nothing was sent; retrying later is safe.
    case connectionFailed(String)
    /// The connection broke while the command was in flight. It may or may not have run; the
    /// client reconnects by itself.
    case connectionLost(String)
    /// No reply came within the command timeout. The command may have run; the connection was
    /// dropped and is remade on the next command.
    case timeout
    /// Redis rejected the credentials (AUTH) or the database (SELECT).
    case authenticationFailed(String)
    /// Redis answered with an error reply.
    case server(String)
    /// The client was closed.
    case closed
    /// A reply did not have the shape the caller expected.
    case unexpectedReply(String)
    /// The command changes per-connection state (SELECT, MULTI, WATCH, SUBSCRIBE, …), which the
    /// shared connections cannot keep. Put the database in the URL; use scripts for atomicity.
    case connectionStateCommand(String)

    public var description: String {
        switch self {
        case .invalidURL(let why): "invalid Redis URL: \(why)"
        case .connectionFailed(let why): "cannot connect to Redis: \(why)"
        case .connectionLost(let why): "lost the connection to Redis: \(why)"
        case .timeout: "Redis did not answer within the command timeout"
        case .authenticationFailed(let why): "Redis refused the connection setup: \(why)"
        case .server(let message): "Redis error: \(message)"
        case .closed: "the Redis client is closed"
        case .unexpectedReply(let what): "unexpected Redis reply: \(what)"
        case .connectionStateCommand(let name):
            "\(name) changes connection state, which the shared connections cannot keep; set the database in the URL and use Lua scripts for atomic work"
        }
    }

    /// Whether the error says the connection is unusable (as opposed to a reply from Redis).
    public var isConnectionError: Bool {
        switch self {
        case .connectionFailed, .connectionLost, .timeout: true
        default: false
        }
    }
}
