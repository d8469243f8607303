import ArgumentParser
import Foundation
import Logging
import SluiceCore
import SluiceProcess
import SluiceRedis

/// `--config`, shared by every command that reads the configuration.
struct ConfigurationOptions: ParsableArguments {
    @Option(name: .long, help: "The configuration file (default: $SLUICE_CONFIG, else config/sluice.yaml).")
    var config: String?

    /// The file `load` reads: --config, else $SLUICE_CONFIG, else config/sluice.yaml.
    var path: String { config ?? ProcessInfo.processInfo.environment["SLUICE_CONFIG"] ?? "config/sluice.yaml" }

    /// The path, or that it is absent and the built-in defaults apply.
    var describedPath: String { FileManager.default.fileExists(atPath: path) ? path : "\(path) (absent: the built-in defaults)" }

    /// The configuration with the environment's overrides applied. A bad file is a clear message
    /// and exit code 2.
    func load() throws -> SluiceConfiguration {
        let environment = ProcessInfo.processInfo.environment
        let path = self.path
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            if config == nil && environment["SLUICE_CONFIG"] == nil {
                text = ""  // no file at the default place: the built-in defaults
            } else {
                throw CommandFailure(exitCode: 2, message: "cannot read the configuration file \(path)")
            }
        }
        do {
            return try SluiceConfiguration.load(yaml: text, environment: environment)
        } catch {
            throw CommandFailure(exitCode: 2, message: "\(path): \(error)")
        }
    }
}

/// A failure with its exit code and a message for a person. Every command's errors become one
/// of these in one place, `CommandFailure.wrap`.
struct CommandFailure: Error, CustomStringConvertible {
    var exitCode: Int32
    var message: String
    var description: String { message }

    /// Runs `body`, turning known errors into a message on stderr and the documented exit code.
    static func wrap(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let failure as CommandFailure {
            FileHandle.standardError.write(Data("sluice: \(failure.message)\n".utf8))
            throw ExitCode(failure.exitCode)
        } catch let error as RedisError {
            FileHandle.standardError.write(Data("sluice: \(error)\n".utf8))
            if case .connectionFailed = error { FileHandle.standardError.write(Data("sluice: \(redisUnreachableHint)\n".utf8)) }
            throw ExitCode(3)
        } catch let error as ChildProcessError {
            FileHandle.standardError.write(Data("sluice: \(error)\n".utf8))
            throw ExitCode(3)
        }
    }
}

/// Writes one line to stdout at once, unbuffered, so that supervisors and log files see each
/// line as it happens (print buffers when stdout is not a terminal).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Reads a pool definition (workers/*.yaml); a CLI failure (exit 2) naming what is wrong.
func loadPoolDefinition(_ path: String) throws -> WorkerPoolDefinition {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw CommandFailure(exitCode: 2, message: "cannot read the pool definition \(path)")
    }
    do { return try WorkerPoolDefinition.load(yaml: text, file: path) } catch {
        throw CommandFailure(exitCode: 2, message: "\(error)")
    }
}

/// The logger every role logs with.
func roleLogger() -> Logger {
    var logger = Logger(label: "sluice")
    logger.logLevel = .info
    return logger
}

/// Connects to the Redis at `url` with the configured settings; the caller closes it.
func connectRedis(_ url: String, _ configuration: SluiceConfiguration) async throws -> RedisClient {
    try await RedisClient.connect(
        configuration: RedisConfiguration(url: url, settings: configuration.redis), connections: configuration.redis.connections)
}

/// What to do when the configured Redis cannot be reached: said after the error that names its URL.
let redisUnreachableHint =
    "is redis-server running at that address? `make run` (sluice up with redis.url null, the default) starts a private one; otherwise start yours, or set redis.url in the configuration file or SLUICE_REDIS_URL"
