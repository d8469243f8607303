import Foundation
import SluiceProcess
import SluiceTestSupport
import Testing

@testable import SluiceStore

/// The two engines every store test runs on.
enum Engine: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }
}

/// A fresh, migrated database of `engine` (a new SQLite file, or a new PostgreSQL cluster from
/// the harness), closed and removed afterwards. `open` reopens the same database (another
/// process's handle on it) and `upTo` stops the migrations at that one.
struct TestDatabase: Sendable {
    let engine: Engine
    let sqlitePath: String?
    let postgres: PostgresLocation?

    func open(upTo last: String? = nil) throws -> SluiceDatabase {
        if let sqlitePath { return try SluiceDatabase(path: sqlitePath, upTo: last) }
        return try SluiceDatabase(postgres: postgres!, connections: 4, logger: .init(label: "test"), upTo: last)
    }
}

func withDatabase<T>(_ engine: Engine, _ body: (TestDatabase) async throws -> T) async throws -> T {
    switch engine {
    case .sqlite:
        let directory = NSTemporaryDirectory() + "sluice-store-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try await body(TestDatabase(engine: engine, sqlitePath: directory + "/sluice.sqlite", postgres: nil))
    case .postgres:
        return try await withPostgres { server in
            let location = try PostgresLocation.parse(server.url, allowPassword: false)
            return try await body(TestDatabase(engine: engine, sqlitePath: nil, postgres: location))
        }
    }
}

/// A key store on a fresh database of `engine`.
func withStore<T>(_ engine: Engine, _ body: (APIKeyStore, TestDatabase) async throws -> T) async throws -> T {
    try await withDatabase(engine) { test in
        let database = try test.open()
        defer { database.close() }
        return try await body(APIKeyStore(database: database), test)
    }
}
