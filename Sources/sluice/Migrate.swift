import ArgumentParser
import SluiceStore

/// `sluice migrate`: brings the configured database (SQLite or PostgreSQL) to this version's
/// schema and prints the migrations it holds. Every start migrates too; this is for running it
/// ahead of a rollout (several replicas starting at once also migrate safely: one at a time).
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Migrate the database (SQLite or PostgreSQL) to this version's schema and print its migrations.")

    @OptionGroup var options: ConfigurationOptions

    func run() async throws {
        try await CommandFailure.wrap {
            let configuration = try options.load()
            let database: SluiceDatabase
            do { database = try SluiceDatabase.open(configuration.database) } catch {
                throw CommandFailure(exitCode: 3, message: "cannot open the database: \(error)")
            }
            defer { database.close() }
            say("database: \(database.path) (\(database.engine.rawValue))")
            for migration in try database.appliedMigrations() { say("  \(migration)") }
        }
    }
}
