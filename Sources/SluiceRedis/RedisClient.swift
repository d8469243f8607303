import Synchronization

/// A Redis client over hiredis 0.14 (RESP2).
///
/// - Commands sent concurrently from many tasks share one connection and are auto-pipelined:
///   they go out in as few writes as the connection's thread can gather.
/// - `pipeline(_:)` sends an explicit batch back to back, in order, in one write.
/// - `run(_:keys:arguments:)` calls a Lua script by SHA and reloads it on NOSCRIPT.
/// - `blocking(_:timeout:)` runs BLMOVE, BZPOPMIN, XREAD BLOCK and the like on a connection of
///   their own, so they never hold up other commands.
/// - Connection loss fails the commands in flight with a `RedisError`; the client reconnects.
/// - Commands that change connection state (SELECT, MULTI, WATCH, SUBSCRIBE, …) are refused with
///   `RedisError.connectionStateCommand`: the database comes from the URL, atomicity from scripts,
///   and subscriptions from `RedisSubscriber`.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    /// The shared, auto-pipelined connections; requests go to them in turn.
    private let connections: [RedisConnection]
    private let nextConnection = Atomic<Int>(0)
    private let dedicated = Mutex<[RedisConnection]>([])
    private let dedicatedCount = Atomic<Int>(0)

    /// How many idle dedicated connections are kept for blocking commands. Every idle lane
    /// worker and stream consumer blocks on one in turn, so the pool keeps one per waiter of a
    /// large process instead of opening (a thread and a connection) for each wait.
    private static let idleDedicatedLimit = 64

    /// A client with `connections` shared connections (each with its own thread). Two let one
    /// batch's write overlap another's execution in Redis; one is enough for light use.
    public init(configuration: RedisConfiguration, connections: Int = 2) {
        self.configuration = configuration
        self.connections = (0..<max(1, connections)).map {
            RedisConnection(configuration: configuration, name: "sluice-redis-\($0)")
        }
    }

    /// The connection for the next request, in turn. Requests a caller awaits one after another
    /// stay ordered; an explicit pipeline always goes out whole on one connection.
    private var connection: RedisConnection {
        connections[nextConnection.wrappingAdd(1, ordering: .relaxed).oldValue % connections.count]
    }

    /// A client for `url`, checked with a PING so that a wrong address fails here.
    public static func connect(url: String, connections: Int = 2) async throws -> RedisClient {
        try await connect(configuration: RedisConfiguration(url: url), connections: connections)
    }

    /// A client for `configuration`, checked with a PING so that a wrong address fails here.
    public static func connect(configuration: RedisConfiguration, connections: Int = 2) async throws -> RedisClient {
        let client = RedisClient(configuration: configuration, connections: connections)
        do {
            _ = try await client.send("PING")
        } catch {
            client.close()
            throw error
        }
        return client
    }

    deinit { close() }

    /// Closes every connection; commands not yet sent fail with `RedisError.closed`.
    public func close() {
        for connection in connections { connection.close() }
        let idle = dedicated.withLock { connections in
            defer { connections.removeAll() }
            return connections
        }
        for connection in idle { connection.close() }
    }

    /// Round trips made so far on the shared connections (for tests and benchmarks).
    public var roundTrips: Int { connections.reduce(0) { $0 + $1.roundTrips } }

    /// Sends one command and returns its reply; an error reply throws `RedisError.server`.
    @discardableResult
    public func send(_ command: RedisCommand) async throws -> RedisValue {
        if command.changesConnectionState { throw RedisError.connectionStateCommand(command.name) }
        let value = try await connection.execute([command])[0]
        if case .error(let message) = value { throw RedisError.server(message) }
        return value
    }

    /// Sends one command built from its name and arguments.
    @discardableResult
    public func send(_ name: String, _ arguments: any RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(name, arguments))
    }

    /// Sends the commands back to back in one write and returns every reply in order. Error
    /// replies are returned as `.error` values, so one failing command does not hide the others.
    public func pipeline(_ commands: [RedisCommand]) async throws -> [RedisValue] {
        guard !commands.isEmpty else { return [] }
        if let stateful = commands.first(where: \.changesConnectionState) {
            throw RedisError.connectionStateCommand(stateful.name)
        }
        return try await connection.execute(commands)
    }

    /// Runs a Lua script with EVALSHA. When Redis answers NOSCRIPT (after a restart or a
    /// `SCRIPT FLUSH`) the script is loaded and the call is made again, transparently.
    @discardableResult
    public func run(_ script: RedisScript, keys: [String], arguments: [any RedisArgument]) async throws -> RedisValue {
        let command = script.evalshaCommand(keys: keys, arguments: arguments)
        let value = try await connection.execute([command])[0]
        if case .error(let message) = value {
            guard message.hasPrefix("NOSCRIPT") else { throw RedisError.server(message) }
            try await send(RedisCommand("SCRIPT", "LOAD", script.source))
            return try await send(command)
        }
        return value
    }

    /// `pipeline` for commands some of which run scripts (each with the script its EVALSHA runs):
    /// a command answered NOSCRIPT (after a restart or a `SCRIPT FLUSH`) has its script loaded
    /// and is sent again, and its reply replaced. Other error replies come back as `.error`.
    public func pipeline(_ calls: [(command: RedisCommand, script: RedisScript?)]) async throws -> [RedisValue] {
        var replies = try await pipeline(calls.map(\.command))
        for index in replies.indices where replies[index].errorMessage?.hasPrefix("NOSCRIPT") == true {
            guard let script = calls[index].script else { continue }
            try await send(RedisCommand("SCRIPT", "LOAD", script.source))
            replies[index] = try await connection.execute([calls[index].command])[0]
        }
        return replies
    }

    /// Runs a blocking command (BLMOVE, BLPOP, BZPOPMIN, XREAD BLOCK, …) on a dedicated
    /// connection. `timeout` is how long the command itself may block; the reply deadline is
    /// that plus the configured command timeout.
    @discardableResult
    public func blocking(_ command: RedisCommand, timeout: Duration) async throws -> RedisValue {
        let connection = checkOutDedicated()
        do {
            let value = try await connection.execute([command], readTimeout: timeout + configuration.commandTimeout)[0]
            checkIn(connection)
            if case .error(let message) = value { throw RedisError.server(message) }
            return value
        } catch let error as RedisError where error.isConnectionError {
            // Its connection is gone; do not keep the connection object for reuse.
            connection.close()
            throw error
        }
    }

    private func checkOutDedicated() -> RedisConnection {
        if let idle = dedicated.withLock({ $0.popLast() }) { return idle }
        let number = dedicatedCount.add(1, ordering: .relaxed).newValue
        return RedisConnection(configuration: configuration, name: "sluice-redis-blocking-\(number)")
    }

    private func checkIn(_ connection: RedisConnection) {
        let kept = dedicated.withLock { connections in
            guard connections.count < Self.idleDedicatedLimit else { return false }
            connections.append(connection)
            return true
        }
        if !kept { connection.close() }
    }
}
