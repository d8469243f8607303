import Foundation
import SluiceCore

/// The three things to try that `sluice up` prints under its ready line: a curl submit with the
/// admin key, `sluice batch` of the shipped sample file, and the dashboard. Written for the
/// shipped configuration's lane `demo` (the mock provider); without it, where to add a provider.
struct ReadyHints {
    /// The sample `sluice batch` file the repository ships, relative to its root.
    static let sampleFile = "config/samples/chat.jsonl"

    var lines: [String]

    /// `adminKey` is the key created at this start (shown in the export line), nil when one
    /// existed already; `port` is the one the server bound.
    init(_ configuration: SluiceConfiguration, port: Int, adminKey: String?, sluiceCommand: String = ReadyHints.invocation()) {
        let host = ["127.0.0.1", "0.0.0.0", "::", "localhost"].contains(configuration.server.host) ? "localhost" : configuration.server.host
        let base = "\(host):\(port)"
        var lines = ["sluice: try next, in another terminal:"]
        // The CLI's default is http://127.0.0.1:8080; another port or host is said.
        let url = port == 8080 && host == "localhost" ? "" : "SLUICE_URL=http://\(host == "localhost" ? "127.0.0.1" : host):\(port) "
        lines.append(
            "  export \(url)SLUICE_API_KEY=\(adminKey ?? "sluice_…")"
                + (adminKey == nil ? "    # your key: the admin key printed at the first start, or `sluice keys create`" : ""))
        if configuration.providers["demo"] != nil {
            lines.append(
                "  curl -s \(base)/v1/jobs -H \"Authorization: Bearer $SLUICE_API_KEY\" -H 'Content-Type: application/json' "
                    + #"-d '{"lane": "demo", "request": {"model": "demo", "messages": [{"role": "user", "content": "Hello"}]}}'"#)
            let sample = FileManager.default.fileExists(atPath: Self.sampleFile) ? Self.sampleFile : "FILE.jsonl"
            lines.append("  \(sluiceCommand) batch \(sample) --wait")
        } else {
            lines.append("  (no provider named demo is configured: add yours under providers: in the configuration file; docs/install.md)")
        }
        if configuration.dashboard.enabled {
            lines.append("  the dashboard: http://\(base)/ui (log in with the key)")
        }
        self.lines = lines
    }

    /// How to run this same binary again: `sluice` when it was found on the PATH, else the path
    /// it was started by (`.build/release/sluice` after `make run`).
    static func invocation() -> String {
        let argument = CommandLine.arguments.first ?? "sluice"
        return argument.contains("/") ? argument : "sluice"
    }
}
