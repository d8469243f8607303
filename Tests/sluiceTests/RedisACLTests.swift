import Foundation
import SluiceProcess
import SluiceRedis
import SluiceTestSupport
import Testing

/// Sluice against a Redis that requires a password, as an ACL user allowed only Sluice's keys
/// (`sluice:*`), its channels and the commands it uses.
@Suite struct RedisACLTests {
    /// The ACL rules of the `sluice` user, after `user sluice on >PASSWORD`: docs/deployment.md gives this
    /// line to paste, and the deploy files use it.
    static let rules = "resetchannels ~sluice:* &sluice:* &sluice:*:done &sluice:keys:changed &sluice:routes:changed -@all +@read +@write +@pubsub +@scripting +@connection -@dangerous +info +role +time"

    /// An ACL file with an admin `default` user and the restricted `sluice` user.
    static func aclFile(in work: String, password: String) throws -> String {
        let path = work + "/users.acl"
        try """
            user default on >admin-secret-9 ~* &* +@all
            user sluice on >\(password) \(rules)

            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// serve and work reach Redis as the `sluice` ACL user, the password read from a file named in
    /// SLUICE_REDIS_URL; a job goes through the mock. Redis denied Sluice nothing it needs (the ACL
    /// log holds no key or channel denial, and no command but `config|get`, which Sluice's start
    /// checks treat as "not allowed here"). The password is in no log; the redacted URL is.
    @Test func serveAndWorkRunAJobAsARestrictedACLUser() async throws {
        try await withWorkDirectory("acl") { work in
            let password = "s1uice-acl-pw-7f3"
            let acl = try Self.aclFile(in: work, password: password)
            let server = try await RedisServerProcess.start(
                directory: work + "/redis", listen: .loopback(port: nil),
                extraArguments: ["--requirepass", "admin-secret-9", "--aclfile", acl])
            guard case .tcp(_, let port) = server.clientConfiguration.endpoint else {
                await server.stop()
                Issue.record("not TCP")
                return
            }
            let passwordFile = work + "/redis-password"
            try "\(password)\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)

            var sluice = TopologyProcesses(work: work, redisURL: "redis://sluice@127.0.0.1:\(port)/0?password_file=\(passwordFile)")
            do {
                let admin = try await RedisClient.connect(configuration: server.clientConfiguration, connections: 1)
                defer { admin.close() }
                try await sluice.startMock()
                // A wrong password: refused, and the error names no password.
                let (refused, refusedOutput) = try await runSluice(
                    ["doctor", "--config", work + "/sluice.yaml"], in: work, environment: ProcessInfo.processInfo.environment.merging(
                        ["SLUICE_REDIS_URL": "redis://sluice:wrong-pw-123@127.0.0.1:\(port)/0"]) { $1 })
                #expect(refused != 0, "\(refusedOutput)")
                #expect(!refusedOutput.contains("wrong-pw-123"), "\(refusedOutput)")
                try await sluice.startServe()
                try await sluice.startWorker()
                let ids = (0..<5).compactMap { sluice.submit("acl \($0)") }
                #expect(ids.count == 5, "\(sluice.logs.suffix(2000))")
                let done = await eventually(timeout: .seconds(30)) { ids.allSatisfy { sluice.job($0)?["status"] as? String == "succeeded" } }
                #expect(done, "\(ids.map { sluice.job($0) ?? [:] }) \(sluice.logs.suffix(3000))")
                let job = try #require(sluice.job(ids[0]))
                #expect("\(job["result"] ?? "")".contains("Hello from the mock provider"), "\(job)")

                // Every key Sluice made is under its prefix (the ACL would have refused others).
                let keys = try await admin.send("KEYS", "*").array?.compactMap(\.string) ?? []
                #expect(!keys.isEmpty && keys.allSatisfy { $0.hasPrefix("sluice:") }, "\(keys)")
                // What Redis denied the sluice user: nothing but CONFIG GET.
                let log = try await admin.send("ACL", "LOG").array ?? []
                let denials = log.compactMap { entry -> String? in
                    let fields = entry.array ?? []
                    var pairs: [String: String] = [:]
                    for index in stride(from: 0, to: fields.count - 1, by: 2) {
                        if let name = fields[index].string { pairs[name] = fields[index + 1].string ?? "\(fields[index + 1])" }
                    }
                    return "\(pairs["reason"] ?? "?") \(pairs["object"] ?? "?") \(pairs["username"] ?? "?")"
                }
                #expect(denials.allSatisfy { $0 == "command config|get sluice" || $0.hasPrefix("auth ") }, "\(denials)")

                #expect(!sluice.logs.contains(password), "the password appears in a log")
                #expect(contents(of: work + "/serve.log").contains("redis://sluice:***@127.0.0.1:\(port)/0"), "\(contents(of: work + "/serve.log").prefix(1500))")
            } catch {
                await sluice.stop()
                await server.stop()
                throw error
            }
            await sluice.stop()
            await server.stop()
        }
    }

    /// The ACL line the documentation gives (docs/deployment.md, "A password and an ACL user") is
    /// the one this suite tests.
    @Test func theDocumentationGivesTheTestedACLLine() throws {
        let page = try String(contentsOfFile: packageRoot + "/docs/deployment.md", encoding: .utf8)
        #expect(page.contains("ACL SETUSER sluice on >PASSWORD \(Self.rules)"))
    }
}
