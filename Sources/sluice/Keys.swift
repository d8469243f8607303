import ArgumentParser
import Foundation
import SluiceCore
import SluiceStore

/// `sluice keys`: API keys in the configured SQLite database (`database:` or `SLUICE_DB`).
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and revoke API keys (in the local database).",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; it is printed once and never again.")
        @OptionGroup var options: ConfigurationOptions
        @Option(help: "The tenant the key acts for.") var tenant: String
        @Option(help: "Comma-separated: submit, read, admin.") var scopes: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            try await CommandFailure.wrap {
                let parsed: Set<Scope>
                do { parsed = try Scope.parseList(scopes) } catch {
                    throw CommandFailure(exitCode: 2, message: "--scopes: \(error)")
                }
                let store = try openStore(options)
                let (secret, key) = try storeCall { try store.create(tenant: tenant, scopes: parsed) }
                if json {
                    say(jsonLine(["key": secret, "prefix": key.prefix, "tenant": key.tenant, "scopes": Scope.format(key.scopes)]))
                } else {
                    say(secret)
                    FileHandle.standardError.write(Data(
                        "created \(key.prefix) for tenant \(key.tenant) with scopes \(Scope.format(key.scopes)); store the key now: it cannot be shown again\n".utf8))
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (prefixes only; secrets are never stored).")
        @OptionGroup var options: ConfigurationOptions
        @Option(help: "Only this tenant's keys.") var tenant: String?
        @Flag(help: "Print JSON lines.") var json = false

        func run() async throws {
            try await CommandFailure.wrap {
                let keys = try storeCall { try openStore(options).list(tenant: tenant) }
                if json {
                    for key in keys {
                        say(jsonLine([
                            "prefix": key.prefix, "tenant": key.tenant, "scopes": Scope.format(key.scopes),
                            "created_at": String(key.createdAt.value), "last_used_at": key.lastUsedAt.map { String($0.value) } ?? "",
                            "revoked": key.isRevoked ? "true" : "false",
                        ]))
                    }
                    return
                }
                say("PREFIX            TENANT            SCOPES              LAST USED            STATUS")
                for key in keys {
                    let lastUsed = key.lastUsedAt.map { iso8601($0) } ?? "never"
                    say([pad(key.prefix, 17), pad(key.tenant, 17), pad(Scope.format(key.scopes), 19), pad(lastUsed, 20),
                         key.isRevoked ? "revoked" : "active"].joined(separator: " "))
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by its prefix (sluice_xxxxxxxx).")
        @OptionGroup var options: ConfigurationOptions
        @Argument(help: "The key's prefix, as `sluice keys list` shows it.") var prefix: String

        func run() async throws {
            try await CommandFailure.wrap {
                guard try storeCall({ try openStore(options).revoke(prefix: prefix) }) else {
                    throw CommandFailure(exitCode: 1, message: "no key with prefix \(prefix)")
                }
                say("revoked \(prefix)")
            }
        }
    }
}

private func openStore(_ options: ConfigurationOptions) throws -> APIKeyStore {
    let configuration = try options.load()
    do {
        return APIKeyStore(database: try SluiceDatabase(path: configuration.database))
    } catch {
        throw CommandFailure(exitCode: 3, message: "cannot open the database \(configuration.database): \(error)")
    }
}

/// Runs a store call, turning a refused argument into exit code 2 with its reason.
private func storeCall<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as StoreError {
        throw CommandFailure(exitCode: 2, message: "\(error)")
    }
}

private func jsonLine(_ fields: [String: String]) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self)
}

private func pad(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}

private func iso8601(_ time: UnixMillis) -> String {
    ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(time.value) / 1000))
}
