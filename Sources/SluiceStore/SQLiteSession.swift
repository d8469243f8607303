import Foundation
import GRDB

/// A session on SQLite: GRDB's `Database`, inside a read or a write (a transaction) of the pool.
struct SQLiteSession: SQLSession {
    let db: Database
    var engine: SQLEngine { .sqlite }

    func query(_ sql: String, _ binds: [any SQLBindable]) throws -> [SQLRow] {
        try Row.fetchAll(db, sql: sql, arguments: Self.arguments(binds)).map { row in
            SQLRow(names: Array(row.columnNames), values: row.databaseValues.map(Self.value(of:)))
        }
    }

    func execute(_ sql: String, _ binds: [any SQLBindable]) throws -> Int {
        try db.execute(sql: sql, arguments: Self.arguments(binds))
        return db.changesCount
    }

    static func arguments(_ binds: [any SQLBindable]) -> StatementArguments {
        StatementArguments(binds.map { databaseValue($0.sqlValue) })
    }

    static func databaseValue(_ value: SQLValue) -> DatabaseValue {
        switch value {
        case .null: .null
        case .integer(let number): number.databaseValue
        case .real(let number): number.databaseValue
        case .text(let text): text.databaseValue
        case .blob(let bytes): Data(bytes).databaseValue
        }
    }

    static func value(of value: DatabaseValue) -> SQLValue {
        switch value.storage {
        case .null: .null
        case .int64(let number): .integer(number)
        case .double(let number): .real(number)
        case .string(let text): .text(text)
        case .blob(let data): .blob(Array(data))
        }
    }
}
