import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import Synchronization

/// Where a PostgreSQL database is, from `database: postgres://user@host:5432/sluice` (or
/// `postgresql://`, or `postgres://user@/sluice?host=/run/postgresql` for a unix socket), with
/// its password from `SLUICE_DATABASE_URL` (the whole URL) or `SLUICE_DATABASE_PASSWORD_FILE`.
/// The password is never in the configuration file, a log line or an error message.
public struct PostgresLocation: Sendable, Hashable, CustomStringConvertible {
    public enum Endpoint: Sendable, Hashable {
        case tcp(host: String, port: Int)
        /// The socket file (`<directory>/.s.PGSQL.<port>`).
        case unixSocket(path: String)
    }
    public enum TLSMode: String, Sendable, Hashable {
        case disable, prefer, require
    }

    public var endpoint: Endpoint
    public var user: String
    public var database: String
    public var tls: TLSMode
    var password: String?

    /// The URL with no password: for logs and messages.
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port): "postgres://\(user)@\(host):\(port)/\(database)"
        case .unixSocket(let path): "postgres://\(user)@/\(database)?host=\(URL(fileURLWithPath: path).deletingLastPathComponent().path)"
        }
    }

    /// Whether `text` names a PostgreSQL database rather than a SQLite file.
    public static func isURL(_ text: String) -> Bool {
        let scheme = text.prefix(14).lowercased()
        return scheme.hasPrefix("postgres://") || scheme.hasPrefix("postgresql://")
    }

    /// Whether `text` is a PostgreSQL URL that holds a password (refused in the configuration file).
    public static func hasPassword(_ text: String) -> Bool {
        isURL(text) && URLComponents(string: text)?.password != nil
    }

    /// Parses a URL. `allowPassword`: whether a password in it is accepted (only from
    /// `SLUICE_DATABASE_URL`). Messages name what is wrong, never the password.
    public static func parse(_ text: String, allowPassword: Bool) throws(DatabaseSettingError) -> PostgresLocation {
        guard isURL(text), let components = URLComponents(string: text) else {
            throw .invalid("not a postgres:// URL (postgres://user@host:5432/database)")
        }
        if components.password != nil && !allowPassword {
            throw .passwordInConfiguration
        }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }) { _, last in last }
        let known: Set<String> = ["host", "port", "user", "sslmode", "dbname"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw .invalid("unknown URL parameter '\(unknown)' (known: host, port, user, sslmode)")
        }
        let user = components.user.flatMap { $0.removingPercentEncoding } ?? query["user"] ?? ""
        guard !user.isEmpty else { throw .invalid("the URL names no user (postgres://user@host/database)") }
        var database = String(components.path.drop(while: { $0 == "/" }))
        database = database.removingPercentEncoding ?? database
        if database.isEmpty { database = query["dbname"] ?? "" }
        guard !database.isEmpty else { throw .invalid("the URL names no database (postgres://user@host/database)") }
        var port = components.port ?? 5432
        if let text = query["port"] {
            guard let number = Int(text) else { throw .invalid("the port '\(text)' is not a number") }
            port = number
        }
        guard (1...65535).contains(port) else { throw .invalid("the port \(port) is out of range") }
        let host = components.host.flatMap { $0.removingPercentEncoding } ?? ""
        let endpoint: Endpoint
        if let socketDirectory = query["host"], socketDirectory.hasPrefix("/") {
            endpoint = .unixSocket(path: "\(socketDirectory)/.s.PGSQL.\(port)")
        } else if host.hasPrefix("/") {
            endpoint = .unixSocket(path: "\(host)/.s.PGSQL.\(port)")
        } else if !host.isEmpty || query["host"] != nil {
            endpoint = .tcp(host: host.isEmpty ? query["host"]! : host, port: port)
        } else {
            throw .invalid("the URL names no host (postgres://user@host/database, or ?host=/socket/directory)")
        }
        let tls: TLSMode
        switch query["sslmode"] {
        case nil: tls = if case .tcp = endpoint { .prefer } else { .disable }
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer
        case "require", "verify-ca", "verify-full": tls = .require
        case let other?: throw .invalid("sslmode '\(other)' is not one of disable, prefer, require")
        }
        let password = components.password.map { $0.removingPercentEncoding ?? $0 }
        return PostgresLocation(endpoint: endpoint, user: user, database: database, tls: tls, password: password)
    }

    func connectionConfiguration() throws -> PostgresConnection.Configuration {
        var configuration = try plainConfiguration()
        // A stalled server or a lock held too long fails the call instead of holding a pooled
        // connection (and its thread) for ever; set at the connection's start, no round trip.
        configuration.options.additionalStartupParameters = [("statement_timeout", "30s"), ("lock_timeout", "10s")]
        return configuration
    }

    private func plainConfiguration() throws -> PostgresConnection.Configuration {
        switch endpoint {
        case .unixSocket(let path):
            return PostgresConnection.Configuration(unixSocketPath: path, username: user, password: password, database: database)
        case .tcp(let host, let port):
            let mode: PostgresConnection.Configuration.TLS
            switch tls {
            case .disable: mode = .disable
            case .prefer: mode = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: mode = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
            return PostgresConnection.Configuration(host: host, port: port, username: user, password: password, database: database, tls: mode)
        }
    }
}

/// Why `database:` (or its environment variables) cannot be used. Never holds the password.
public enum DatabaseSettingError: Error, Sendable, Hashable, CustomStringConvertible {
    case invalid(String)
    case passwordInConfiguration
    case passwordFile(String)

    public var description: String {
        switch self {
        case .invalid(let why): "database: \(why)"
        case .passwordInConfiguration:
            "database: the URL holds a password, which the configuration file must not: give the whole URL in SLUICE_DATABASE_URL, or the password in a file named by SLUICE_DATABASE_PASSWORD_FILE"
        case .passwordFile(let why): "SLUICE_DATABASE_PASSWORD_FILE: \(why)"
        }
    }
}

/// A few PostgreSQL connections shared by the stores: a connection is taken for one read or
/// one transaction and given back; at most `size` are open. A connection that failed or closed
/// is dropped and a new one opened on the next need, so a restarted server is reconnected to.
final class PostgresPool: Sendable {
    let location: PostgresLocation
    let size: Int
    private let configuration: PostgresConnection.Configuration
    private let logger: Logger
    private let slots: DispatchSemaphore
    private let idle = Mutex<[PostgresConnection]>([])
    private let nextID = Atomic<Int>(1)
    private let closed = Atomic<Bool>(false)
    /// The threads the async calls run their sessions on, one a connection: a session waits on
    /// its queries, so it must not take a thread of the concurrency pool, nor of NIO's shared
    /// thread pool (file I/O uses it).
    let threads: NIOThreadPool

    init(location: PostgresLocation, size: Int, logger: Logger) throws {
        self.location = location
        self.size = size
        self.configuration = try location.connectionConfiguration()
        self.logger = logger
        self.slots = DispatchSemaphore(value: size)
        threads = NIOThreadPool(numberOfThreads: size)
        threads.start()
    }

    /// Runs `body` with a connection of the pool (waiting up to 30 s for one to be free).
    func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        guard !closed.load(ordering: .relaxed) else { throw DatabaseError.closed }
        guard slots.wait(timeout: .now() + 30) == .success else { throw DatabaseError.busy(size) }
        defer { slots.signal() }
        let connection = try takeIdle() ?? connect()
        do {
            let result = try body(connection)
            giveBack(connection)
            return result
        } catch {
            giveBack(connection)
            throw error
        }
    }

    /// An idle connection still open; one the server closed meanwhile (a restart) is dropped.
    private func takeIdle() -> PostgresConnection? {
        while let connection = idle.withLock({ $0.popLast() }) {
            if !connection.isClosed { return connection }
            try? (connection.close() as EventLoopFuture<Void>).wait()
        }
        return nil
    }

    private func giveBack(_ connection: PostgresConnection) {
        if connection.isClosed || closed.load(ordering: .relaxed) {
            try? (connection.close() as EventLoopFuture<Void>).wait()
        } else {
            idle.withLock { $0.append(connection) }
        }
    }

    private func connect() throws -> PostgresConnection {
        let id = nextID.add(1, ordering: .relaxed).oldValue
        do {
            return try PostgresConnection.connect(
                on: MultiThreadedEventLoopGroup.singleton.next(), configuration: configuration, id: id, logger: logger
            ).wait()
        } catch {
            // PSQLError's description is generic on purpose; its reflection names the server's
            // own message (never the password we sent).
            throw DatabaseError.connectionFailed("\(location): \(Self.reason(error))")
        }
    }

    /// What the server or the connection said, without the query's binds.
    static func reason(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                let code = error.serverInfo?[.sqlState].map { " (\($0))" } ?? ""
                return message + code
            }
            if let underlying = error.underlying { return String(describing: underlying) }
            return String(describing: error.code)
        }
        return String(describing: error)
    }

    /// Closes the idle connections (and, as they come back, the busy ones), waiting for each:
    /// PostgresNIO requires a connection closed before it is released.
    func close() {
        if closed.exchange(true, ordering: .relaxed) == false {
            threads.shutdownGracefully { _ in }  // not waited for: this may run on one of them
        }
        for connection in idle.withLock({ list in defer { list.removeAll() }; return list }) {
            try? (connection.close() as EventLoopFuture<Void>).wait()
        }
    }

    deinit { close() }
}

/// A session on one PostgreSQL connection.
struct PostgresSession: SQLSession {
    let connection: PostgresConnection
    let logger: Logger
    var engine: SQLEngine { .postgres }

    func query(_ sql: String, _ binds: [any SQLBindable]) throws -> [SQLRow] {
        let result = try run(sql, binds)
        return try result.rows.map(Self.row(_:))
    }

    func execute(_ sql: String, _ binds: [any SQLBindable]) throws -> Int {
        try run(sql, binds).metadata.rows ?? 0
    }

    private func run(_ sql: String, _ binds: [any SQLBindable]) throws -> PostgresQueryResult {
        var bindings = PostgresBindings(capacity: binds.count)
        for bind in binds {
            switch bind.sqlValue {
            case .null: bindings.appendNull()
            case .integer(let number): bindings.append(number)
            case .real(let number): bindings.append(number)
            case .text(let text): bindings.append(text)
            case .blob(let bytes): bindings.append(ByteBuffer(bytes: bytes))
            }
        }
        let query = PostgresQuery(unsafeSQL: SQLText.numberedPlaceholders(sql), binds: bindings)
        do {
            return try connection.query(query, logger: logger).wait()
        } catch {
            throw DatabaseError.statementFailed(PostgresPool.reason(error))
        }
    }

    static func row(_ row: PostgresRow) throws -> SQLRow {
        var names: [String] = []
        var values: [SQLValue] = []
        for cell in row {
            names.append(cell.columnName)
            values.append(try value(cell))
        }
        return SQLRow(names: names, values: values)
    }

    static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil else { return .null }
        do {
            switch cell.dataType {
            case .int2, .int4, .int8: return .integer(try cell.decode(Int64.self))
            case .float4, .float8: return .real(try cell.decode(Double.self))
            case .bytea: return .blob(Array(buffer: try cell.decode(ByteBuffer.self)))
            case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
            case .numeric:
                // SUM over BIGINT is NUMERIC; the stores cast their sums, so only a whole number fits here.
                let text = try cell.decode(String.self)
                if let number = Int64(text) { return .integer(number) }
                if let number = Double(text) { return .real(number) }
                throw StoreError.corrupt("numeric \(cell.columnName)")
            default: return .text(try cell.decode(String.self))
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.corrupt("column \(cell.columnName) of type \(cell.dataType)")
        }
    }
}

/// Why the database could not answer.
public enum DatabaseError: Error, Sendable, CustomStringConvertible {
    case connectionFailed(String)
    case statementFailed(String)
    case busy(Int)
    case closed

    public var description: String {
        switch self {
        case .connectionFailed(let why): "could not connect to PostgreSQL at \(why)"
        case .statementFailed(let why): "PostgreSQL refused a statement: \(why)"
        case .busy(let size): "all \(size) PostgreSQL connections stayed busy for 30 s"
        case .closed: "the database is closed"
        }
    }
}
