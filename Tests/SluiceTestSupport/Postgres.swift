import Foundation
import SluiceProcess

/// Runs `body` against a private PostgreSQL server (`PostgresServerProcess`: a fresh cluster on a
/// unix socket in a directory of its own) and stops the server and removes the directory
/// afterwards, also when `body` throws. When PostgreSQL is not installed this throws: a test
/// that needs it fails, it never passes without it.
///
/// The directory sits right under the temporary directory (not in a 0700 folder of ours): when
/// the tests run as root, the server runs as the `postgres` user and must reach it.
public func withPostgres<T>(_ body: (PostgresServerProcess) async throws -> T) async throws -> T {
    let directory = NSTemporaryDirectory() + "sluice-pg-" + UUID().uuidString
    let server = try await PostgresServerProcess.start(directory: directory)
    do {
        let result = try await body(server)
        await server.stopAndRemove()
        return result
    } catch {
        await server.stopAndRemove()
        throw error
    }
}
