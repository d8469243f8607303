import Foundation

/// Runs `body` in a work folder of its own with `run`, which runs `sluice` there with a database
/// of that folder (`SLUICE_DB`) and an empty config (`SLUICE_CONFIG`): the `keys` commands as an
/// operator runs them on a host with no server. The folder is removed after.
func withKeysDatabase(
    _ body: (_ run: ([String]) async throws -> (status: Int32?, output: String)) async throws -> Void
) async throws {
    let work = NSTemporaryDirectory() + "sluice-keys-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: work) }
    try "".write(toFile: work + "/none.yaml", atomically: true, encoding: .utf8)
    var environment = ProcessInfo.processInfo.environment
    environment["SLUICE_DB"] = work + "/sluice.sqlite"
    environment["SLUICE_CONFIG"] = work + "/none.yaml"
    try await body { arguments in try await runSluice(arguments, in: work, environment: environment) }
}
