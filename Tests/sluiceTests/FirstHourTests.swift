import Foundation
import SluiceProcess
import SluiceTestSupport
import Testing

/// The first hour's mistakes, each met for real, and what Sluice says to do about it: the
/// version and install pieces, no Redis, a port taken, a bad configuration key, a wrong key,
/// and `sluice doctor` on each.
@Suite struct FirstHourTests {
    /// A folder for one test, removed after.
    private static func folder() throws -> String {
        let work = NSTemporaryDirectory() + "sluice-first-hour-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        return work
    }

    @Test func versionPrintsTheNumberAndTheCommitBakedIn() async throws {
        let work = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let (status, output) = try await runSluice(["--version"], in: work)
        #expect(status == 0)
        #expect(output.range(of: #"^0\.1\.0 \(commit ([0-9a-f]{7,40}(-dirty)?|unknown)\)\n$"#, options: .regularExpression) != nil, "\(output)")
        // The commit `make build-commit` baked (Sources/sluice/BuildCommit.swift), else unknown;
        // compared when the binary was built after the file was written (a `make` run since the
        // build would have rewritten it).
        let file = packageRoot + "/Sources/sluice/BuildCommit.swift"
        let baked = contents(of: file)
        let commit = baked.range(of: #"bakedCommit: String \{ "([^"]+)""#, options: .regularExpression).map {
            String(baked[$0].split(separator: "\"")[1])
        } ?? "unknown"
        let modified = { (path: String) in (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? nil }
        if let binaryDate = modified(try sluiceBinary()), modified(file).map({ $0 < binaryDate }) ?? true {
            #expect(output == "0.1.0 (commit \(commit))\n", "\(output)")
        }
    }

    @Test func completionScriptsAreMadeForBashZshAndFish() async throws {
        let work = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        for shell in ["bash", "zsh", "fish"] {
            let (status, output) = try await runSluice(["--generate-completion-script", shell], in: work)
            #expect(status == 0, "\(shell): \(output)")
            for subcommand in ["up", "doctor", "batch", "keys", "submit"] {
                #expect(output.contains(subcommand), "\(shell)'s script does not name \(subcommand)")
            }
        }
        let (_, bash) = try await runSluice(["--generate-completion-script", "bash"], in: work)
        #expect(bash.contains("-F _sluice sluice"), "\(bash.suffix(300))")
        let (_, zsh) = try await runSluice(["--generate-completion-script", "zsh"], in: work)
        #expect(zsh.hasPrefix("#compdef sluice"), "\(zsh.prefix(300))")
    }

    @Test func makeInstallPutsTheBinaryAndCompletionsUnderPrefixAndDestdir() async throws {
        let work = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let (status, output) = try await runProgram(
            "/usr/bin/env", ["make", "-C", packageRoot, "-n", "install", "PREFIX=/x", "DESTDIR=/d"], in: work)
        #expect(status == 0, "\(output)")
        for line in [
            "install -m 755 .build/release/sluice /d/x/bin/sluice",
            ".build/release/sluice --generate-completion-script bash > /d/x/share/bash-completion/completions/sluice",
            ".build/release/sluice --generate-completion-script zsh > /d/x/share/zsh/site-functions/_sluice",
            ".build/release/sluice --generate-completion-script fish > /d/x/share/fish/vendor_completions.d/sluice.fish",
            "build -c release --product sluice",
        ] {
            #expect(output.contains(line), "make -n install does not run: \(line)\n\(output)")
        }
        let (_, uninstall) = try await runProgram("/usr/bin/env", ["make", "-C", packageRoot, "-n", "uninstall", "PREFIX=/x"], in: work)
        #expect(
            uninstall.contains(
                "rm -f /x/bin/sluice /x/share/bash-completion/completions/sluice /x/share/zsh/site-functions/_sluice /x/share/fish/vendor_completions.d/sluice.fish"),
            "\(uninstall)")
        let (_, run) = try await runProgram("/usr/bin/env", ["make", "-C", packageRoot, "-n", "run"], in: work)
        #expect(run.contains("the binary is .build/release/sluice;") && run.contains("make install\\` puts it on the PATH"), "\(run)")
    }

    @Test func noRedisNamesTheURLAndWhatToDo() async throws {
        let work = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let port = try freeLoopbackPort()
        try "database: \(work)/sluice.sqlite\nserver: { port: 0 }\n".write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["SLUICE_REDIS_URL"] = "redis://127.0.0.1:\(port)/0"
        let (status, output) = try await runSluice(["serve", "--config", work + "/sluice.yaml"], in: work, environment: environment)
        #expect(status == 3, "\(output)")
        #expect(output.contains("cannot connect to Redis: redis://127.0.0.1:\(port)/0"), "\(output)")
        #expect(output.contains("is redis-server running at that address? `make run`"), "\(output)")
        #expect(output.contains("SLUICE_REDIS_URL"), "\(output)")

        let (doctorStatus, doctor) = try await runSluice(["doctor", "--config", work + "/sluice.yaml"], in: work, environment: environment)
        #expect(doctorStatus == 3, "\(doctor)")
        #expect(doctor.contains("[error] redis: cannot connect to Redis: redis://127.0.0.1:\(port)/0"), "\(doctor)")
        #expect(doctor.contains("`make run` (sluice up with redis.url null, the default) starts a private one"), "\(doctor)")
    }

    @Test func aPortTakenNamesThePortAndTheSetting() async throws {
        let work = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let holder = try ListeningSocket()
        defer { holder.close() }
        try "database: \(work)/sluice.sqlite\nserver: { port: \(holder.port) }\n"
            .write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)

        let (doctorStatus, doctor) = try await runSluice(["doctor", "--config", work + "/sluice.yaml"], in: work)
        #expect(doctorStatus == 1, "\(doctor)")
        #expect(doctor.contains("[error] port \(holder.port) (server.port) is taken by another process"), "\(doctor)")
        #expect(doctor.contains("server.port in the configuration file or SLUICE_PORT"), "\(doctor)")

        let (status, output) = try await runProgram(
            try sluiceBinary(), ["up", "--config", work + "/sluice.yaml", "--data-directory", work + "/redis"], in: work,
            timeout: .seconds(30))
        #expect(status == 3, "\(output)")
        #expect(output.contains("port \(holder.port) on 127.0.0.1 is taken by another process"), "\(output)")
        #expect(output.contains("SLUICE_PORT=\(holder.port + 1)"), "\(output)")
    }

    @Test func aBadConfigurationKeyNamesTheFileTheKeyAndTheNearestKey() async throws {
        let work = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        try "server:\n  prot: 8080\n".write(toFile: work + "/bad.yaml", atomically: true, encoding: .utf8)
        let (status, output) = try await runSluice(["doctor", "--config", work + "/bad.yaml"], in: work)
        #expect(status == 2)
        #expect(output.contains("\(work)/bad.yaml: configuration: server.prot is not a known setting; did you mean server.port?"), "\(output)")
    }

    @Test func doctorPassesAHealthySetupAndFailsAWrongKey() async throws {
        let work = try Self.folder()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let port = try freeLoopbackPort()
        try "database: \(work)/sluice.sqlite\nserver: { port: \(port) }\nproviders: { demo: { kind: openai, base_url: 'http://127.0.0.1:1/v1' } }\n"
            .write(toFile: work + "/sluice.yaml", atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["SLUICE_API_KEY"] = nil
        environment["SLUICE_REDIS_URL"] = nil
        let (status, output) = try await runSluice(["doctor", "--config", work + "/sluice.yaml"], in: work, environment: environment)
        #expect(status == 0, "\(output)")
        #expect(output.contains("[ok] port \(port) (server.port) is free"), "\(output)")
        #expect(output.contains("[ok] providers: demo"), "\(output)")
        #expect(!output.contains("[error]"), "\(output)")

        environment["SLUICE_API_KEY"] = "sluice_abcdefgh_" + String(repeating: "x", count: 43)
        let (wrongStatus, wrong) = try await runSluice(["doctor", "--config", work + "/sluice.yaml"], in: work, environment: environment)
        #expect(wrongStatus == 1, "\(wrong)")
        #expect(wrong.contains("[error] api key: SLUICE_API_KEY is not a live key of this database"), "\(wrong)")
        #expect(wrong.contains("sluice keys create"), "\(wrong)")
    }
}

/// A loopback TCP socket listening on a port the kernel chose, as another program holding a port.
final class ListeningSocket: Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 8) == 0 else {
            _ = Glibc.close(descriptor)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) } }
        fd = descriptor
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { _ = Glibc.close(fd) }
}
