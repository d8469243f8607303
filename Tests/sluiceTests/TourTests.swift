import Foundation
import SluiceProcess
import SluiceTestSupport
import Testing

/// The README's five-minute tour, run: its ```console blocks between `<!-- tour -->` and
/// `<!-- /tour -->` are commands (`$ …`, a trailing `\` continues a command) and their outputs,
/// where `…` matches anything within a line and a line of `…` alone any number of lines.
/// `$ make run` stands for the `sluice up` this test starts; its shown lines must appear in
/// order among what it printed (log lines and the mock provider's may fall between). Every
/// other command runs in one bash, in order, and must print exactly what the tour shows.
@Suite struct TourTests {
    @Test(.enabled(if: Tour.hasCurl, "the tour's commands use curl: apt-get install curl"))
    func theReadmeTourRunsAsWritten() async throws {
        let steps = try Tour.steps(readme: packageRoot + "/README.md")
        #expect(steps.count >= 6, "the tour lost its commands: \(steps.map(\.command))")
        #expect(steps.first?.command == "make run")

        // `make run`'s folder: config/sluice.yaml as shipped, the sample file, var/ made by sluice up.
        let work = NSTemporaryDirectory() + "sluice-tour-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work + "/config/samples", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try FileManager.default.copyItem(atPath: packageRoot + "/config/samples/chat.jsonl", toPath: work + "/config/samples/chat.jsonl")
        // Free ports instead of 8080 and 9100 (a `make run` may be up beside the tests): the API
        // takes port 0 (sluice prints the one bound); the mock provider a port found free here.
        let mockPort = try freeLoopbackPort()
        let shipped = try String(contentsOfFile: packageRoot + "/config/sluice.yaml", encoding: .utf8)
        #expect(shipped.contains("port: 8080") && shipped.contains("port: 9100") && shipped.contains("127.0.0.1:9100"))
        try shipped.replacingOccurrences(of: "port: 8080", with: "port: 0")
            .replacingOccurrences(of: "port: 9100", with: "port: \(mockPort)")
            .replacingOccurrences(of: "127.0.0.1:9100", with: "127.0.0.1:\(mockPort)")
            .write(toFile: work + "/config/sluice.yaml", atomically: true, encoding: .utf8)

        let binary = try sluiceBinary()
        let log = work + "/up.log"
        // `sluice up` in that folder, as `make run` is (exec: the signal below reaches sluice itself).
        let up = try ChildProcess.spawn(
            "/bin/sh", arguments: ["-c", "cd \(Tour.quoted(work)) && exec \(Tour.quoted(binary)) up"], outputPath: log)
        defer { up.signal(SIGTERM) }
        let ready = await eventually(timeout: .seconds(30)) { contents(of: log).contains("log in with the key") }
        #expect(ready, "\(contents(of: log))")
        let port = try #require(listeningPort(in: contents(of: log)), "\(contents(of: log))")
        let key = try #require(
            contents(of: log).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.first { $0.hasPrefix("sluice_") })

        // What the tour shows is a `make run` on 8080 and 9100 with .build/release/sluice; this
        // run's port, mock port and binary are put back to those before comparing.
        func normalized(_ text: String) -> String {
            text.replacingOccurrences(of: "SLUICE_URL=http://127.0.0.1:\(port) ", with: "")
                .replacingOccurrences(of: ":\(port)/", with: ":8080/").replacingOccurrences(of: ":\(port);", with: ":8080;")
                .replacingOccurrences(of: ":\(port) ", with: ":8080 ").replacingOccurrences(of: ":\(mockPort)", with: ":9100")
                .replacingOccurrences(of: binary + " ", with: ".build/release/sluice ")
        }

        // make run: the shown lines, in order, among sluice up's.
        let upLines = normalized(contents(of: log)).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var index = upLines.startIndex
        for expected in steps[0].output where expected != "…" {
            guard let found = upLines[index...].firstIndex(where: { Tour.matches(expected, $0) }) else {
                Issue.record("make run: no line like \(expected) (in order) in:\n\(upLines.joined(separator: "\n"))")
                break
            }
            index = found + 1
        }

        // The rest, in one bash: a marker line before each command splits the output.
        let marker = "@@tour-step-"
        var script = "cd \(Tour.quoted(work))\n"
        for (number, step) in steps.enumerated().dropFirst() {
            let command = step.command.replacingOccurrences(of: "sluice_…", with: key)
                .replacingOccurrences(of: "localhost:8080", with: "localhost:\(port)")
            script += "printf '\\n\(marker)\(number)\\n'\n{ \(command)\n} 2>&1\n"
        }
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = URL(fileURLWithPath: binary).deletingLastPathComponent().path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["SLUICE_URL"] = "http://127.0.0.1:\(port)"
        environment["SLUICE_API_KEY"] = nil
        try script.write(toFile: work + "/tour.sh", atomically: true, encoding: .utf8)
        let (status, output) = try await runProgram("/bin/bash", [work + "/tour.sh"], in: work, environment: environment, timeout: .seconds(60))
        #expect(status == 0, "\(output)")
        var outputs: [Int: [String]] = [:]
        var current: Int?
        for line in normalized(output).split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix(marker) {
                current = Int(line.dropFirst(marker.count))
            } else if let current {
                outputs[current, default: []].append(line)
            }
        }
        for (number, step) in steps.enumerated().dropFirst() {
            var got = outputs[number] ?? []
            while got.last == "" { got.removeLast() }
            #expect(Tour.matches(lines: step.output, got), "$ \(step.command)\nthe tour shows:\n\(step.output.joined(separator: "\n"))\nit printed:\n\(got.joined(separator: "\n"))")
        }
    }

    @Test func tourPatternsMatchAsDocumented() {
        #expect(Tour.matches("job_…  succeeded", "job_abc  succeeded"))
        #expect(!Tour.matches("job_…  succeeded", "job_abc  failed"))
        #expect(Tour.matches(#"{"id":"job_…","x":1}"#, #"{"id":"job_1","x":1}"#))
        #expect(Tour.matches(lines: ["a", "…", "d"], ["a", "b", "c", "d"]))
        #expect(Tour.matches(lines: ["a", "…", "d"], ["a", "d"]))
        #expect(!Tour.matches(lines: ["a", "d"], ["a", "b", "d"]))
        #expect(!Tour.matches(lines: ["a"], ["a", "b"]))
    }
}

/// The README tour's commands and outputs, and its `…` patterns.
enum Tour {
    struct Step {
        var command: String
        var output: [String]
    }

    static func steps(readme path: String) throws -> [Step] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        guard let start = text.range(of: "<!-- tour -->"), let end = text.range(of: "<!-- /tour -->"), start.upperBound < end.lowerBound
        else { throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: path]) }
        var steps: [Step] = []
        var inBlock = false
        var continuing = false
        for line in text[start.upperBound..<end.lowerBound].split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("```") {
                inBlock = line == "```console"
                continuing = false
                continue
            }
            guard inBlock else { continue }
            if continuing, !steps.isEmpty {
                steps[steps.count - 1].command += "\n" + line
                continuing = line.hasSuffix("\\")
            } else if line.hasPrefix("$ ") {
                steps.append(Step(command: String(line.dropFirst(2)), output: []))
                continuing = line.hasSuffix("\\")
            } else if !steps.isEmpty {
                steps[steps.count - 1].output.append(line)
            }
        }
        return steps
    }

    /// One line: `…` matches any run of characters (none included).
    static func matches(_ pattern: String, _ line: String) -> Bool {
        let parts = pattern.components(separatedBy: "…")
        guard parts.count > 1 else { return pattern == line }
        guard line.hasPrefix(parts[0]) else { return false }
        var rest = line.dropFirst(parts[0].count)
        for (offset, part) in parts.enumerated().dropFirst() {
            if offset == parts.count - 1 { return rest.hasSuffix(part) && rest.count >= part.count }
            guard let found = rest.range(of: part) else { return false }
            rest = rest[found.upperBound...]
        }
        return true
    }

    /// Lines: each pattern matches one line, except `…` alone, which matches any number.
    static func matches(lines patterns: [String], _ lines: [String]) -> Bool {
        guard let first = patterns.first else { return lines.isEmpty }
        let rest = Array(patterns.dropFirst())
        if first == "…" { return (0...lines.count).contains { matches(lines: rest, Array(lines.dropFirst($0))) } }
        guard let line = lines.first, matches(first, line) else { return false }
        return matches(lines: rest, Array(lines.dropFirst()))
    }

    /// Whether curl is on the PATH (a Debian image may lack it; `make deps` does not install it).
    static var hasCurl: Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .contains { FileManager.default.isExecutableFile(atPath: "\($0)/curl") }
    }

    static func quoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}

/// A loopback TCP port no one listens on now (bound to port 0, then let go).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}
