import Foundation

/// The one interface the stores are written against: statements in the SQL both engines accept
/// (SQLite and PostgreSQL), with `?` placeholders and typed binds, run in a session of either.
///
/// It is synchronous on purpose, as GRDB is: several callers (the CLI's key commands, some
/// handlers) read keys synchronously, and a synchronous PostgreSQL session waits on SwiftNIO
/// futures, which complete on NIO's event loops, never on the concurrency pool it would block.
/// The async entry points (`SluiceDatabase.read`/`write`) run a session on a thread of their own.
public protocol SQLSession {
    var engine: SQLEngine { get }
    /// Runs a statement and returns its rows (a statement with `RETURNING` included).
    func query(_ sql: String, _ binds: [any SQLBindable]) throws -> [SQLRow]
    /// Runs a statement; returns how many rows it inserted, updated or deleted.
    @discardableResult
    func execute(_ sql: String, _ binds: [any SQLBindable]) throws -> Int
}

extension SQLSession {
    func query(_ sql: String) throws -> [SQLRow] { try query(sql, []) }
    func queryOne(_ sql: String, _ binds: [any SQLBindable] = []) throws -> SQLRow? { try query(sql, binds).first }
    @discardableResult
    func execute(_ sql: String) throws -> Int { try execute(sql, []) }
}

public enum SQLEngine: String, Sendable, Hashable {
    case sqlite, postgres
}

/// A value bound to a statement or read from a row.
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// What can be bound to a `?`.
public protocol SQLBindable {
    var sqlValue: SQLValue { get }
}

extension SQLValue: SQLBindable { public var sqlValue: SQLValue { self } }
extension Int64: SQLBindable { public var sqlValue: SQLValue { .integer(self) } }
extension Int: SQLBindable { public var sqlValue: SQLValue { .integer(Int64(self)) } }
extension Double: SQLBindable { public var sqlValue: SQLValue { .real(self) } }
extension String: SQLBindable { public var sqlValue: SQLValue { .text(self) } }
extension Array: SQLBindable where Element == UInt8 { public var sqlValue: SQLValue { .blob(self) } }
extension Data: SQLBindable { public var sqlValue: SQLValue { .blob(Array(self)) } }
extension Optional: SQLBindable where Wrapped: SQLBindable { public var sqlValue: SQLValue { self?.sqlValue ?? .null } }

/// What a column can be read as. `decode` returns nil when the stored value is of another kind.
public protocol SQLColumn {
    static func decode(_ value: SQLValue) -> Self?
}

extension Int64: SQLColumn {
    public static func decode(_ value: SQLValue) -> Int64? {
        switch value {
        case .integer(let number): number
        // SQLite hands back an integer stored in a REAL column as a real; a whole one reads back.
        case .real(let number): Int64(exactly: number)
        default: nil
        }
    }
}

extension Int: SQLColumn {
    public static func decode(_ value: SQLValue) -> Int? { Int64.decode(value).flatMap { Int(exactly: $0) } }
}

extension Double: SQLColumn {
    public static func decode(_ value: SQLValue) -> Double? {
        switch value {
        case .real(let number): number
        case .integer(let number): Double(number)
        default: nil
        }
    }
}

extension String: SQLColumn {
    public static func decode(_ value: SQLValue) -> String? {
        if case .text(let text) = value { return text }
        return nil
    }
}

extension Array: SQLColumn where Element == UInt8 {
    public static func decode(_ value: SQLValue) -> [UInt8]? {
        switch value {
        case .blob(let bytes): bytes
        // SQLite keeps what it was given: a BLOB column written as text reads back as text.
        case .text(let text): Array(text.utf8)
        default: nil
        }
    }
}

extension Optional: SQLColumn where Wrapped: SQLColumn {
    public static func decode(_ value: SQLValue) -> Wrapped?? {
        if case .null = value { return .some(nil) }
        return Wrapped.decode(value).map { .some($0) }
    }
}

/// A row: its columns by name.
public struct SQLRow: Sendable {
    let names: [String]
    let values: [SQLValue]

    /// The value of `column`, as `T`. Throws `StoreError.corrupt` when the row has no such column
    /// or holds a value of another kind (a database edited by hand).
    public subscript<T: SQLColumn>(_ column: String) -> T {
        get throws {
            guard let index = names.firstIndex(of: column) else { throw StoreError.corrupt("no column \(column)") }
            guard let value = T.decode(values[index]) else { throw StoreError.corrupt("column \(column) is not a \(T.self)") }
            return value
        }
    }
}

enum SQLText {
    /// `?` placeholders as PostgreSQL's `$1`, `$2`, …, outside quoted strings and identifiers.
    static func numberedPlaceholders(_ sql: String) -> String {
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var number = 0
        var quote: Character?
        for character in sql {
            if let open = quote {
                if character == open { quote = nil }
                out.append(character)
            } else if character == "'" || character == "\"" {
                quote = character
                out.append(character)
            } else if character == "?" {
                number += 1
                out += "$\(number)"
            } else {
                out.append(character)
            }
        }
        return out
    }
}
