import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

@Suite struct RedisRequirementsTests {
    @Test func embeddedStyleServerPassesEveryCheck() async throws {
        try await withRedis(appendOnly: true) { _, redis in
            let findings = try await RedisRequirements.check(redis)
            #expect(findings.allSatisfy { $0.severity == .ok }, "\(findings)")
            #expect(findings.map(\.check) == ["version", "maxmemory-policy", "persistence", "hash-max-listpack-value"])
        }
    }

    @Test func evictionPolicyIsAnErrorAndMissingAOFAWarning() async throws {
        try await withRedis(extraArguments: ["--maxmemory-policy", "allkeys-lru", "--hash-max-listpack-value", "64"]) { _, redis in
            let findings = try await RedisRequirements.check(redis)
            let bySeverity = Dictionary(grouping: findings, by: \.check).mapValues { $0[0].severity }
            #expect(bySeverity["maxmemory-policy"] == .error)
            #expect(bySeverity["persistence"] == .warning)
            #expect(bySeverity["hash-max-listpack-value"] == .warning)
            #expect(bySeverity["version"] == .ok)
        }
    }
}
