import Foundation
import Testing
import Yams

/// The deploy/ examples were not run here (no container engine, no cluster). These checks keep
/// them parseable and in step with what Sluice serves: its commands, its routes, its metrics.
@Suite struct DeployTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL

    static func text(_ path: String) throws -> String { try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8) }

    /// The metric names `/metrics` emits, read from its source.
    static func emittedMetrics() throws -> Set<String> {
        let source = try text("Sources/SluiceHTTP/SluiceMetrics.swift")
        let pattern = try NSRegularExpression(pattern: #"sluice_[a-z_]+"#)
        let names = pattern.matches(in: source, range: NSRange(source.startIndex..., in: source)).compactMap { Range($0.range, in: source).map { String(source[$0]) } }
        return Set(names)
    }

    /// The CLI's subcommand names, read from its source: the types Sluice.swift lists (a one-word
    /// type's command is its name in lower case) and every explicit `commandName`.
    static func cliCommands() throws -> Set<String> {
        var names: Set<String> = []
        let directory = root.appendingPathComponent("Sources/sluice")
        let listed = try NSRegularExpression(pattern: #"\b([A-Z][a-z]+)\.self"#)
        let main = try String(contentsOf: directory.appendingPathComponent("Sluice.swift"), encoding: .utf8)
        for match in listed.matches(in: main, range: NSRange(main.startIndex..., in: main)) {
            names.insert(String(main[Range(match.range(at: 1), in: main)!]).lowercased())
        }
        let explicit = try NSRegularExpression(pattern: #"commandName:\s*"([a-z-]+)""#)
        for file in try FileManager.default.contentsOfDirectory(atPath: directory.path) where file.hasSuffix(".swift") {
            let source = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            for match in explicit.matches(in: source, range: NSRange(source.startIndex..., in: source)) {
                names.insert(String(source[Range(match.range(at: 1), in: source)!]))
            }
        }
        return names
    }

    /// The ACL rules of Sluice's Redis user, as RedisACLTests tests them (shell-quoted here).
    static let aclRules = "resetchannels '~sluice:*' '&sluice:*' '&sluice:*:done' '&sluice:keys:changed' '&sluice:routes:changed' -@all +@read +@write +@pubsub +@scripting +@connection -@dangerous +info +role +time"

    static func dictionary(_ value: Any?, _ path: String...) -> [String: Any]? {
        var current = value
        for key in path { current = (current as? [String: Any])?[key] }
        return current as? [String: Any]
    }

    /// A URL with a password written in it (`scheme://user:password@`; a shell variable such as
    /// `$PG` in a comment's example command is not one).
    static func hasInlinePassword(_ text: String) -> Bool {
        text.range(of: #"://[^/@\s:]+:[^/@\s$]+@"#, options: .regularExpression) != nil
    }

    @Test func theKubernetesManifestsRunThreeWebReplicasOnPostgresAndARedisWithAPassword() throws {
        let text = try Self.text("deploy/kubernetes.yaml")
        let documents = try Array(Yams.load_all(yaml: text)).compactMap { $0 as? [String: Any] }
        let kinds = documents.map { "\($0["kind"] ?? "")/\(Self.dictionary($0, "metadata")?["name"] ?? "")" }
        #expect(kinds == [
            "Service/sluice-web", "Deployment/sluice-web", "Deployment/sluice-worker", "Service/redis", "StatefulSet/redis",
            "Service/postgres", "StatefulSet/postgres",
        ])
        for document in documents { #expect(document["apiVersion"] is String) }
        // No Secret is written in the file: it is created with kubectl, and every password comes from it.
        #expect(!kinds.contains { $0.hasPrefix("Secret/") })
        #expect(!Self.hasInlinePassword(text))
        let commands = try Self.cliCommands()
        #expect(commands.isSuperset(of: ["serve", "work", "autoscale"]), "\(commands)")

        func container(_ name: String) throws -> [String: Any] {
            let document = try #require(documents.first { Self.dictionary($0, "metadata")?["name"] as? String == name && $0["kind"] as? String != "Service" })
            let spec = try #require(Self.dictionary(document, "spec", "template", "spec"))
            return try #require((spec["containers"] as? [[String: Any]])?.first)
        }
        func env(_ container: [String: Any]) -> [String: [String: Any]] {
            Dictionary(((container["env"] as? [[String: Any]]) ?? []).map { ($0["name"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        }
        let web = try #require(documents.first { $0["kind"] as? String == "Deployment" && Self.dictionary($0, "metadata")?["name"] as? String == "sluice-web" })
        #expect(Self.dictionary(web, "spec")?["replicas"] as? Int == 3)
        let webContainer = try container("sluice-web")
        #expect((webContainer["args"] as? [String])?.first == "serve")
        #expect(Self.dictionary(webContainer, "readinessProbe", "httpGet")?["path"] as? String == "/readyz")
        #expect(Self.dictionary(webContainer, "livenessProbe", "httpGet")?["path"] as? String == "/healthz")
        let webEnv = env(webContainer)
        #expect(Self.dictionary(webEnv["SLUICE_DATABASE_URL"], "valueFrom", "secretKeyRef")?["key"] as? String == "database-url")
        let redisURL = try #require(webEnv["SLUICE_REDIS_URL"]?["value"] as? String)
        #expect(redisURL.hasPrefix("redis://sluice@redis:6379/") && redisURL.contains("password_file=/var/run/secrets/sluice/redis-password"))
        let worker = try container("sluice-worker")
        #expect((worker["args"] as? [String])?.prefix(3) == ["work", "--pool", "/etc/sluice/workers/default.yaml"])
        #expect(env(worker)["SLUICE_REDIS_URL"]?["value"] as? String == redisURL)
        #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("workers/default.yaml").path))
        // Redis: a password for the default user and the sluice ACL user, both from the Secret.
        let redis = try container("redis")
        let redisCommand = ((redis["command"] as? [String]) ?? []) + ((redis["args"] as? [String]) ?? [])
        let script = redisCommand.joined(separator: " ")
        #expect(script.contains(#"--requirepass "$(cat /var/run/secrets/redis/redis-admin-password)""#))
        #expect(script.contains(#"--user sluice on ">$(cat /var/run/secrets/redis/redis-password)" "# + Self.aclRules))
        // PostgreSQL on a volume, its password from the Secret.
        let postgres = try #require(documents.first { $0["kind"] as? String == "StatefulSet" && Self.dictionary($0, "metadata")?["name"] as? String == "postgres" })
        #expect((Self.dictionary(postgres, "spec")?["volumeClaimTemplates"] as? [Any])?.count == 1)
        #expect(env(try container("postgres"))["POSTGRES_PASSWORD_FILE"] != nil)
        // Nobody runs as root: Sluice's pods as the image's numeric user, Redis (whose image's
        // root-dropping entrypoint the command replaces) as its redis user. PostgreSQL's image
        // drops root itself.
        for (name, uid) in [("sluice-web", 10001), ("sluice-worker", 10001), ("redis", 999)] {
            let document = try #require(documents.first { Self.dictionary($0, "metadata")?["name"] as? String == name && $0["kind"] as? String != "Service" })
            let context = Self.dictionary(document, "spec", "template", "spec", "securityContext")
            #expect(context?["runAsNonRoot"] as? Bool == true && context?["runAsUser"] as? Int == uid, "\(name): \(String(describing: context))")
        }
        #expect(try Self.text("deploy/Dockerfile").contains("USER 10001:10001"))
    }

    @Test func theComposeFileRunsRedisPostgresTwoWebTwoWorkersAndTheScaler() throws {
        let text = try Self.text("deploy/compose.yaml")
        let compose = try #require(try Yams.load(yaml: text) as? [String: Any])
        let services = try #require(compose["services"] as? [String: Any])
        #expect(Set(services.keys) == ["redis", "postgres", "web", "worker", "scaler"])
        #expect(!Self.hasInlinePassword(text))
        let commands = try Self.cliCommands()
        func service(_ name: String) throws -> [String: Any] { try #require(services[name] as? [String: Any]) }
        for (name, command, replicas) in [("web", "serve", 2), ("worker", "work", 2), ("scaler", "autoscale", 1)] {
            let definition = try service(name)
            let arguments = try #require(definition["command"] as? [String])
            #expect(arguments.first == command && commands.contains(command))
            #expect((Self.dictionary(definition, "deploy")?["replicas"] as? Int ?? 1) == replicas, "\(name)")
            #expect(definition["image"] as? String == "sluice:latest")
            #expect(Self.dictionary(definition, "build")?["dockerfile"] as? String == "deploy/Dockerfile")
            let environment = try #require(definition["environment"] as? [String: Any])
            #expect((environment["SLUICE_REDIS_URL"] as? String)?.hasSuffix("?password_file=/run/secrets/redis-password") == true)
            #expect(environment["SLUICE_DB"] as? String == "postgres://sluice@postgres:5432/sluice")
            #expect(environment["SLUICE_DATABASE_PASSWORD_FILE"] as? String == "/run/secrets/postgres-password")
            #expect((definition["secrets"] as? [String])?.contains("redis-password") == true)
        }
        for pool in ["worker", "scaler"] {
            let arguments = try #require(try service(pool)["command"] as? [String])
            #expect(arguments.dropFirst().first == "--pool")
            #expect(arguments.last == "/etc/sluice/workers/default.yaml")
        }
        let redisScript = try #require(try service("redis")["command"] as? [String]).joined(separator: " ")
        #expect(redisScript.contains(#"--user sluice on ">$$(cat /run/secrets/redis-password)" "# + Self.aclRules))
        // Not as root: the image's entrypoint (which drops to its redis user) runs the server.
        #expect(redisScript.contains("exec docker-entrypoint.sh redis-server "))
        #expect(redisScript.contains(#"--requirepass "$$(cat /run/secrets/redis-admin-password)""#))
        #expect(Self.dictionary(try service("postgres"), "environment")?["POSTGRES_PASSWORD_FILE"] as? String == "/run/secrets/postgres-password")
        let secrets = try #require(compose["secrets"] as? [String: Any])
        #expect(Set(secrets.keys) == ["redis-password", "redis-admin-password", "postgres-password"])
        for (_, secret) in secrets { #expect(((secret as? [String: Any])?["file"] as? String)?.hasPrefix("./secrets/") == true) }
        // The Dockerfile puts the pool definitions where the commands name them.
        #expect(try Self.text("deploy/Dockerfile").contains("COPY workers /etc/sluice/workers"))
    }

    @Test func theKEDAScaledObjectReadsSluicesDecision() throws {
        let documents = try Array(Yams.load_all(yaml: try Self.text("deploy/keda-scaledobject.yaml"))).compactMap { $0 as? [String: Any] }
        let scaled = try #require(documents.first { $0["kind"] as? String == "ScaledObject" })
        #expect(scaled["apiVersion"] as? String == "keda.sh/v1alpha1")
        let spec = try #require(scaled["spec"] as? [String: Any])
        #expect((spec["scaleTargetRef"] as? [String: Any])?["name"] as? String == "sluice-worker")
        let trigger = try #require((spec["triggers"] as? [[String: Any]])?.first)
        #expect(trigger["type"] as? String == "metrics-api")
        let metadata = try #require(trigger["metadata"] as? [String: Any])
        #expect((metadata["url"] as? String)?.hasSuffix("/v1/scaling/default") == true)
        #expect(metadata["valueLocation"] as? String == "desired")
        // The commented Prometheus alternative names a metric /metrics emits.
        #expect(try Self.text("deploy/keda-scaledobject.yaml").contains("sluice_desired_workers"))
        #expect(try Self.emittedMetrics().contains("sluice_desired_workers"))
    }

    @Test func theGrafanaDashboardIsJSONOnMetricsSluiceEmits() throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("deploy/grafana-dashboard.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        #expect(panels.count >= 6)
        let emitted = try Self.emittedMetrics()
        let pattern = try NSRegularExpression(pattern: #"sluice_[a-z_]+"#)
        for panel in panels {
            for target in panel["targets"] as? [[String: Any]] ?? [] {
                let expression = try #require(target["expr"] as? String)
                for match in pattern.matches(in: expression, range: NSRange(expression.startIndex..., in: expression)) {
                    var name = String(expression[Range(match.range, in: expression)!])
                    for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) && !emitted.contains(name) { name = String(name.dropLast(suffix.count)) }
                    #expect(emitted.contains(name), "panel '\(panel["title"] ?? "")' uses \(name), which /metrics does not emit")
                }
            }
        }
    }

    @Test func theDockerfileIsWellFormedAndCopiesWhatExists() throws {
        let instructions: Set<String> = ["FROM", "ARG", "RUN", "WORKDIR", "COPY", "USER", "ENV", "EXPOSE", "ENTRYPOINT", "CMD"]
        var lines: [String] = []
        var continued = ""
        for raw in try Self.text("deploy/Dockerfile").split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if continued.isEmpty && (line.isEmpty || line.hasPrefix("#")) { continue }
            continued += line
            if line.hasSuffix("\\") { continued.removeLast(); continue }
            lines.append(continued)
            continued = ""
        }
        #expect(continued.isEmpty, "a line continues past the end")
        let keywords = lines.map { String($0.split(separator: " ")[0]) }
        #expect(keywords.allSatisfy(instructions.contains), "\(keywords)")
        #expect(keywords.first { $0 != "ARG" } == "FROM")
        for line in lines where line.hasPrefix("COPY ") && !line.contains("--from") {
            let source = String(line.split(separator: " ")[1])
            #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent(source).path), "COPY \(source): no such path")
        }
        for line in lines where line.hasPrefix("ENTRYPOINT") || line.hasPrefix("CMD") {
            let array = line.drop { $0 != "[" }
            #expect((try? JSONSerialization.jsonObject(with: Data(array.utf8))) is [String], "\(line)")
        }
        #expect(lines.contains { $0.contains("libhiredis") } && lines.contains { $0.contains("libsqlite3") })
    }
}
