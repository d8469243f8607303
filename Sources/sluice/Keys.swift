import ArgumentParser
import Foundation
import SluiceCore
import SluiceStore

/// `sluice keys`: API keys in the configured SQLite database (`database:` or `SLUICE_DB`).
struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list, limit and revoke API keys (in the local database).",
        subcommands: [Create.self, List.self, Limits.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; it is printed once and never again.")
        @OptionGroup var options: ConfigurationOptions
        @Option(help: "The tenant the key acts for.") var tenant: String
        @Option(help: "Comma-separated: submit, read, admin.") var scopes: String
        @Option(help: "Submit rate limit, jobs per second (a token bucket).") var rate: Double?
        @Option(help: "The bucket's size, in jobs (default: one second of the rate).") var burst: Int?
        @Option(help: "The most unfinished jobs the key may have at once.") var maxQueued: Int?
        @Option(help: "The highest job priority the key may use (default 0; admin keys are not held to it).") var maxPriority: Int?
        @Option(help: "Comma-separated lanes or providers the key may submit to (default: every configured lane).") var lanes: String?
        @Option(help: "A budget for the key: US dollars per period (see --budget-per).") var budgetUsd: Double?
        @Option(help: "The budget's period: day or month (default month).") var budgetPer: String?
        @Option(help: "What a job leased while the budget is exceeded does: wait (default) or fail.") var budgetOnExceeded: String?
        @Option(help: "The key's response cache setting, as JSON: false, true or '{\"ttl\": \"1h\", \"all\": true}'.") var cache: String?
        @Flag(help: "Print JSON.") var json = false

        /// The option's cache setting, checked as the API checks one (nil when --cache is not given).
        func cacheSetting() throws -> ResponseCacheDefault? {
            guard let cache else { return nil }
            guard let value = try? JSONValue(parsing: cache) else {
                throw CommandFailure(exitCode: 2, message: "--cache: must be JSON: false, true or {\"ttl\": \"1h\", \"all\": true}")
            }
            do { return try ResponseCacheDefault.parse(value) } catch { throw CommandFailure(exitCode: 2, message: "--cache: " + error.message) }
        }

        /// The options' budget, checked as the API checks one (nil when --budget-usd is not given).
        func budget() throws -> BudgetPolicy? {
            guard let budgetUsd else {
                if budgetPer != nil || budgetOnExceeded != nil {
                    throw CommandFailure(exitCode: 2, message: "--budget-per and --budget-on-exceeded need --budget-usd")
                }
                return nil
            }
            var object = JSONObject()
            object["usd"] = .number(budgetUsd)
            if let budgetPer { object["per"] = .string(budgetPer) }
            if let budgetOnExceeded { object["on_exceeded"] = .string(budgetOnExceeded) }
            do { return try BudgetPolicy.parse(.object(object)) } catch {
                throw CommandFailure(exitCode: 2, message: "--" + error.param.replacingOccurrences(of: ".", with: "-").replacingOccurrences(of: "_", with: "-") + ": " + error.message)
            }
        }

        func run() async throws {
            try await CommandFailure.wrap {
                let parsed: Set<Scope>
                do { parsed = try Scope.parseList(scopes) } catch {
                    throw CommandFailure(exitCode: 2, message: "--scopes: \(error)")
                }
                let budget = try budget()
                let cacheSetting = try cacheSetting()
                let store = try openStore(options)
                let limits = KeyLimits(
                    submitRate: rate, submitBurst: burst, maxQueued: maxQueued, maxPriority: maxPriority,
                    lanes: KeyLimits.lanes(from: lanes))
                var (secret, key) = try storeCall { try store.create(tenant: tenant, scopes: parsed, limits: limits) }
                if let budget { key = try storeCall { try store.setBudget(prefix: key.prefix, budget) } ?? key }
                if let cacheSetting { key = try storeCall { try store.setCache(prefix: key.prefix, cacheSetting) } ?? key }
                await announceKeyChange(options, prefix: key.prefix)
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
                say("PREFIX            TENANT            SCOPES              LAST USED            STATUS   LIMITS")
                for key in keys {
                    let lastUsed = key.lastUsedAt.map { iso8601($0) } ?? "never"
                    say([pad(key.prefix, 17), pad(key.tenant, 17), pad(Scope.format(key.scopes), 19), pad(lastUsed, 20),
                         pad(key.isRevoked ? "revoked" : "active", 8), describe(key.limits, budget: key.budget, cache: key.cache)].joined(separator: " "))
                }
            }
        }
    }

    struct Limits: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or change a key's limits. A value of 'none' removes that limit; a limit not named stays.")
        @OptionGroup var options: ConfigurationOptions
        @Argument(help: "The key's prefix, as `sluice keys list` shows it.") var prefix: String
        @Option(help: "Submit rate, jobs per second, or none.") var rate: String?
        @Option(help: "Bucket size in jobs, or none.") var burst: String?
        @Option(help: "Cap on unfinished jobs, or none.") var maxQueued: String?
        @Option(help: "Highest job priority, or none (0).") var maxPriority: String?
        @Option(help: "Comma-separated lanes or providers, or none (every lane).") var lanes: String?

        func run() async throws {
            try await CommandFailure.wrap {
                let store = try openStore(options)
                guard var limits = try storeCall({ try store.find(prefix: prefix) })?.limits else {
                    throw CommandFailure(exitCode: 1, message: "no key with prefix \(prefix)")
                }
                if let rate { limits.submitRate = try Self.value(rate, "--rate", Double.init) }
                if let burst { limits.submitBurst = try Self.value(burst, "--burst") { Int($0) } }
                if let maxQueued { limits.maxQueued = try Self.value(maxQueued, "--max-queued") { Int($0) } }
                if let maxPriority { limits.maxPriority = try Self.value(maxPriority, "--max-priority") { Int($0) } }
                if let lanes { limits.lanes = lanes == "none" ? nil : KeyLimits.lanes(from: lanes) }
                guard let key = try storeCall({ try store.setLimits(prefix: prefix, limits) }) else {
                    throw CommandFailure(exitCode: 1, message: "no key with prefix \(prefix)")
                }
                await announceKeyChange(options, prefix: key.prefix)
                say("\(key.prefix): " + describe(key.limits))
            }
        }

        static func value<T>(_ text: String, _ option: String, _ parse: (String) -> T?) throws -> T? {
            if text == "none" { return nil }
            guard let value = parse(text) else { throw CommandFailure(exitCode: 2, message: "\(option): '\(text)' is not a number or none") }
            return value
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
                await announceKeyChange(options, prefix: prefix)
                say("revoked \(prefix)")
            }
        }
    }
}

private func openStore(_ options: ConfigurationOptions) throws -> APIKeyStore {
    let configuration = try options.load()
    do {
        return APIKeyStore(database: try SluiceDatabase.open(configuration.database))
    } catch {
        throw CommandFailure(exitCode: 3, message: "cannot open the database \(SluiceDatabase.describe(configuration.database)): \(error)")
    }
}

/// Runs a store call, turning a refused argument into exit code 2 with its reason.
private func storeCall<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as StoreError {
        throw CommandFailure(exitCode: 2, message: "\(error)")
    }
}

/// "rate 50/s burst 100, max queued 1000, budget $5.000000/day (fail), cache {"ttl":3600}", or "none".
private func describe(_ limits: KeyLimits, budget: BudgetPolicy? = nil, cache: ResponseCacheDefault? = nil) -> String {
    var parts: [String] = []
    if let rate = limits.submitRate { parts.append("rate \(rate)/s burst \(limits.effectiveBurst ?? 1)") }
    if let cap = limits.maxQueued { parts.append("max queued \(cap)") }
    if let most = limits.maxPriority { parts.append("max priority \(most)") }
    if let lanes = limits.lanes { parts.append("lanes \(lanes.joined(separator: ","))") }
    if let budget { parts.append("budget $\(Budgets.usd(budget.micros))/\(budget.per.rawValue) (\(budget.onExceeded.rawValue))") }
    if let cache { parts.append("cache \(cache.text)") }
    return parts.isEmpty ? "none" : parts.joined(separator: ", ")
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
