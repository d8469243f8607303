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

    @Test func theKubernetesManifestsParseAndRunSluiceCommands() throws {
        let documents = try Array(Yams.load_all(yaml: try Self.text("deploy/kubernetes.yaml"))).compactMap { $0 as? [String: Any] }
        #expect(documents.compactMap { $0["kind"] as? String } == ["Secret", "Service", "PersistentVolumeClaim", "Deployment", "Deployment"])
        for document in documents {
            #expect(document["apiVersion"] is String)
            #expect(((document["metadata"] as? [String: Any])?["name"] as? String)?.isEmpty == false)
        }
        let commands = documents.filter { $0["kind"] as? String == "Deployment" }.compactMap { deployment -> String? in
            let spec = (((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any])
            let container = (spec?["containers"] as? [[String: Any]])?.first
            return (container?["args"] as? [String])?.first
        }
        #expect(commands == ["serve", "work"])
        let worker = try Self.text("deploy/kubernetes.yaml")
        #expect(worker.contains("/etc/sluice/workers/default.yaml"))
        #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("workers/default.yaml").path))
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
