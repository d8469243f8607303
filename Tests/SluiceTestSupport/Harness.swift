import Foundation
import SluiceProcess
import SluiceRedis

/// Runs `body` against a private `redis-server` started for it on a unix socket in a directory
/// of its own (or a free loopback port, for tests that need TCP), and stops the server
/// afterwards, also when `body` throws. No mock stands in for Redis anywhere in the tests.
///
/// A unix socket by default: a test that restarts its server on a TCP port frees that port for
/// a moment, and another test's new server could take it (then both talk to one server).
public func withRedis<T>(
    listen: RedisServerProcess.Listen = .unixSocket, appendOnly: Bool = false,
    extraArguments: [String] = [], commandTimeout: Duration = .seconds(10),
    _ body: (RedisServerProcess, RedisClient) async throws -> T
) async throws -> T {
    let directory = NSTemporaryDirectory() + "sluice-tests/" + UUID().uuidString
    let server = try await RedisServerProcess.start(
        directory: directory, listen: listen, appendOnly: appendOnly, extraArguments: extraArguments)
    var configuration = server.clientConfiguration
    configuration.commandTimeout = commandTimeout
    let client: RedisClient
    do {
        client = try await RedisClient.connect(configuration: configuration)
    } catch {
        await server.stop()
        throw error
    }
    do {
        let result = try await body(server, client)
        client.close()
        await server.stop()
        try? FileManager.default.removeItem(atPath: directory)
        return result
    } catch {
        client.close()
        await server.stop()
        try? FileManager.default.removeItem(atPath: directory)
        throw error
    }
}

/// Waits until `condition` holds, checking every 10 ms, for at most `timeout`. Returns whether
/// it held. For conditions that depend on other processes or background work. The default is a
/// hang guard, not a speed check: a loaded CI machine outran 10 s; a test whose bound proves
/// something (it must come before a cache lapses, a poll, a pause) passes its own.
public func eventually(
    timeout: Duration = .seconds(60), _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// Whether a process with this pid exists (and is not a zombie of ours).
public func processExists(_ pid: pid_t) -> Bool {
    kill(pid, 0) == 0
}
