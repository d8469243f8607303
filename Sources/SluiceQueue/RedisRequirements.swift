import SluiceCore
import SluiceRedis

/// What Sluice needs of a Redis server, checked against a live one (`sluice doctor`).
public enum RedisRequirements {
    /// One finding: what was checked, what was found, and how much it matters.
    public struct Finding: Sendable, Hashable, CustomStringConvertible {
        public enum Severity: String, Sendable, Hashable { case ok, warning, error }
        public var check: String
        public var severity: Severity
        public var detail: String

        public var description: String { "[\(severity.rawValue)] \(check): \(detail)" }
    }

    /// Runs every check. An `.error` finding means Sluice's guarantees do not hold on this
    /// server; a `.warning` means they hold with a weaker durability or efficiency.
    public static func check(_ redis: RedisClient) async throws -> [Finding] {
        var findings: [Finding] = []
        let server = try await info(redis, section: "server")
        let version = server["redis_version"] ?? "?"
        let parts = version.split(separator: ".").compactMap { Int($0) }
        let recentEnough = parts.count >= 2 && (parts[0] > 6 || (parts[0] == 6 && parts[1] >= 2))
        findings.append(
            Finding(
                check: "version", severity: recentEnough ? .ok : .error,
                detail: recentEnough ? "Redis \(version)" : "Redis \(version); Sluice needs 6.2 or later (LPOP with a count)"))

        let policy = try await config(redis, "maxmemory-policy")
        switch policy {
        case "noeviction":
            findings.append(Finding(check: "maxmemory-policy", severity: .ok, detail: "noeviction"))
        case nil:
            findings.append(Finding(check: "maxmemory-policy", severity: .warning, detail: "CONFIG GET is not allowed here; make sure the policy is noeviction"))
        case let other?:
            findings.append(
                Finding(
                    check: "maxmemory-policy", severity: .error,
                    detail: "\(other): under memory pressure Redis would evict jobs silently; set maxmemory-policy noeviction"))
        }

        let persistence = try await info(redis, section: "persistence")
        if persistence["aof_enabled"] == "1" {
            let fsync = try await config(redis, "appendfsync") ?? "?"
            findings.append(Finding(check: "persistence", severity: .ok, detail: "AOF on, appendfsync \(fsync)"))
        } else {
            findings.append(
                Finding(
                    check: "persistence", severity: .warning,
                    detail: "AOF is off: a Redis crash or restart loses every job since the last RDB snapshot; set appendonly yes"))
        }

        if let value = try await config(redis, "hash-max-listpack-value").flatMap({ Int($0) }) {
            findings.append(
                Finding(
                    check: "hash-max-listpack-value", severity: value >= 512 ? .ok : .warning,
                    detail: value >= 512
                        ? "\(value)"
                        : "\(value): job hashes with larger payloads take about twice the memory; 1024 is recommended"))
        }
        return findings
    }

    private static func info(_ redis: RedisClient, section: String) async throws -> [String: String] {
        let text = try await redis.send("INFO", section).string ?? ""
        var fields: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let pair = line.split(separator: ":", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        return fields
    }

    private static func config(_ redis: RedisClient, _ name: String) async throws -> String? {
        do {
            let reply = try await redis.send("CONFIG", "GET", name)
            guard let values = reply.array, values.count == 2 else { return nil }
            return values[1].string
        } catch RedisError.server {
            return nil  // CONFIG is disabled or renamed (common on managed Redis)
        }
    }
}
