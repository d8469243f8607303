import Foundation
import SluiceCore
import SluiceMock
import SluiceProcess
import SluiceQueue
import SluiceTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// deploy/nginx.conf, run in Debian's nginx in front of `sluice up` over HTTPS (a certificate the
/// test makes with openssl): submits, a long-poll the proxy does not cut, a facade call, a bulk
/// upload above nginx's default body limit, a job's event stream passed on live; the client's
/// address in Sluice's access log and login limit taken from X-Forwarded-For only because the
/// proxy is in `server.trusted_proxies`, a direct client's spoofed header ignored; nginx stopped.
@Suite struct ReverseProxyTests {
    static let shipped = packageRoot + "/deploy/nginx.conf"

    /// The shipped file's limits against Sluice's own: nginx waits longer than Sluice's longest
    /// wait, lets idle upstream connections go before Sluice closes them, and accepts every body
    /// Sluice accepts (so Sluice, not nginx, answers a too-large one, in JSON).
    @Test func theShippedConfigWaitsLongerAndAcceptsAsMuchAsSluice() throws {
        let conf = try String(contentsOfFile: Self.shipped, encoding: .utf8)
        let defaults = try SluiceConfiguration.load(yaml: "server: { port: 1 }\n")
        let server = defaults.server
        let batches = defaults.batches
        let longestWait = Bounded.seconds(max(server.facadeMaxWait, .seconds(60)))
        let timeouts = Self.values("proxy_read_timeout", in: conf).compactMap(Self.seconds)
        #expect(timeouts.count >= 2)
        #expect(timeouts.allSatisfy { $0 > longestWait }, "\(timeouts) against \(longestWait) s")
        let keepalive = try #require(
            Self.values("keepalive_timeout", in: conf).first.flatMap(Self.seconds))
        #expect(keepalive < Bounded.seconds(server.idleTimeout))
        // Bulk submit's 100 MiB (SluiceAPI.Settings.bulkMaxBytes), batch files' batches.max_file_bytes.
        #expect(try Self.bodyLimit(conf, after: "location = /v1/jobs/bulk") > 100 << 20)
        #expect(try Self.bodyLimit(conf, after: "location = /v1/files") > batches.maxFileBytes)
        #expect(
            try Self.bodyLimit(conf, after: "location = /v1/messages/batches") > batches.maxFileBytes)
        // Every other body: Sluice's 1 MiB (`SluiceRequestContext.maxUploadSize`).
        #expect(try Self.bodyLimit(conf, after: "server {") > 1 << 20)
        #expect(conf.contains("proxy_buffering off;") && conf.contains("proxy_http_version 1.1;"))
    }

    @Test func nginxInFrontServesTheAPIOverHTTPSAndOnlyItsForwardedForIsBelieved() async throws {
        guard
            let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            Issue.record(
                "nginx is not installed: run `apt-get install nginx` (`make deps`, which `make test` runs, installs it)"
            )
            return
        }
        try await withMockProvider(MockConfiguration()) { _, base in
            let config =
                "providers:\n  mock: { kind: openai, base_url: \"\(base)/v1\", models: [gpt-4o-mini] }\n  demo: { kind: external }\n"
            try await withRunningSluice(
                config: config, server: "trusted_proxies: [127.0.0.1], access_log: true"
            ) { sluice in
                let proxy = try await NginxProxy.start(nginx, upstream: sluice.url, work: sluice.work)
                var failure: (any Error)?
                do { try await Self.drive(sluice, through: proxy) } catch { failure = error }
                // Stopped cleanly: SIGQUIT (a graceful stop) ends the master, which removes its pid file.
                proxy.process.signal(SIGQUIT)
                let status = await proxy.process.waitForExit(timeout: .seconds(20))
                if status == nil { proxy.process.signal(SIGKILL) }
                #expect(
                    status == 0,
                    "nginx did not stop on SIGQUIT: \(contents(of: proxy.directory + "/error.log"))")
                #expect(!FileManager.default.fileExists(atPath: proxy.directory + "/nginx.pid"))
                let after = try await proxy.curl(["\(proxy.url)/healthz"])
                #expect(after.code == 0, "still answering after it stopped: \(after)")
                if let failure { throw failure }
            }
        }
    }

    static func drive(_ sluice: RunningSluice, through proxy: NginxProxy) async throws {
        // Every request through the proxy comes from 127.0.0.2 and claims to be from a third address.
        let auth = ["-H", "Authorization: Bearer \(sluice.adminKey)"]
        let health = try await proxy.curl(["\(proxy.url)/healthz"])
        #expect(health.code == 200, "\(health)")

        // A submit, then a long-poll that outlasts the job's 3 s of waiting.
        let submitted = try await proxy.curl(
            auth + [
                "-H", "Content-Type: application/json", "-d", #"{"lane": "demo", "request": {"n": 1}}"#,
                "\(proxy.url)/v1/jobs",
            ])
        #expect(submitted.code == 202, "\(submitted)")
        let id = try #require(Self.string("id", in: submitted.body), "\(submitted)")
        let completer = Task {
            try await Task.sleep(for: .seconds(3))
            try await sluice.complete(lane: "demo", count: 1)
        }
        let started = ContinuousClock.now
        let polled = try await proxy.curl(auth + ["\(proxy.url)/v1/jobs/\(id)?wait=30"])
        try await completer.value
        #expect(polled.code == 200 && polled.body.contains(#""status":"succeeded""#), "\(polled)")
        #expect(
            ContinuousClock.now - started >= .seconds(1), "the long-poll answered before the job finished"
        )

        // A job's event stream, read through the proxy while it is live: the timeline so far
        // arrives before the job ends, then its end.
        let streamed = try await proxy.curl(
            auth + [
                "-H", "Content-Type: application/json", "-d", #"{"lane": "demo", "request": {"n": 2}}"#,
                "\(proxy.url)/v1/jobs",
            ])
        let streamedID = try #require(Self.string("id", in: streamed.body), "\(streamed)")
        let events = proxy.directory + "/events.txt"
        let stream = try proxy.spawnCurl(
            auth + [
                "-N", "-H", "Accept: text/event-stream", "\(proxy.url)/v1/jobs/\(streamedID)/events",
            ], output: events)
        let sawQueued = await eventually(timeout: .seconds(30)) {
            contents(of: events).contains(#""status":"queued""#)
        }
        #expect(sawQueued, "\(contents(of: events))")
        #expect(!contents(of: events).contains("event: end"))
        try await sluice.complete(lane: "demo", count: 1)
        let ended = await stream.waitForExit(timeout: .seconds(30))
        if ended == nil { stream.signal(SIGKILL) }
        #expect(ended == 0, "\(contents(of: events))")
        #expect(
            contents(of: events).contains("event: end")
                && contents(of: events).contains(#""status":"succeeded""#), "\(contents(of: events))")

        // The synchronous facade, answered by the mock provider.
        let chat = try await proxy.curl(
            auth + [
                "-H", "Content-Type: application/json", "-d",
                #"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}"#,
                "\(proxy.url)/v1/chat/completions",
            ])
        #expect(chat.code == 200 && chat.body.contains("choices"), "\(chat)")

        // A bulk upload of 2.4 MB of JSONL: above nginx's default 1 MB and the 2 MB of every other route.
        let padding = String(repeating: "x", count: 4000)
        let lines = (0..<600).map {
            #"{"lane": "demo", "request": {"n": \#($0), "pad": "\#(padding)"}}"#
        }
        let bulkFile = proxy.directory + "/bulk.jsonl"
        try lines.joined(separator: "\n").write(toFile: bulkFile, atomically: true, encoding: .utf8)
        let bulk = try await proxy.curl(
            auth + [
                "-H", "Content-Type: application/jsonl", "--data-binary", "@" + bulkFile,
                "\(proxy.url)/v1/jobs/bulk",
            ])
        #expect(bulk.code == 202, "\(bulk.code) \(bulk.body.prefix(500))")
        #expect(bulk.body.components(separatedBy: "job_").count - 1 >= 600)

        // A 1.5 MB job: over Sluice's 1 MiB but under the file's 2 MB, so Sluice answers, in JSON.
        let bigFile = proxy.directory + "/big.json"
        try #"{"lane": "demo", "request": {"pad": "\#(String(repeating: "y", count: 1_500_000))"}}"#.write(toFile: bigFile, atomically: true, encoding: .utf8)
        let big = try await proxy.curl(auth + ["-H", "Content-Type: application/json", "--data-binary", "@" + bigFile, "\(proxy.url)/v1/jobs"])
        #expect(big.code == 413 && big.body.contains(#""error""#) && !big.body.contains("<html"), "\(big.code) \(big.body.prefix(300))")

        // The dashboard's login limit counts a failed login against the client, not the proxy.
        let jar = proxy.directory + "/cookies"
        let page = try await proxy.curl(["-c", jar, "\(proxy.url)/ui/login"])
        let token = try #require(Self.csrf(in: page.body), "\(page)")
        let login = try await proxy.curl([
            "-b", jar, "--data-urlencode", "csrf=\(token)", "--data-urlencode", "key=sluice_wrong",
            "\(proxy.url)/ui/login",
        ])
        #expect(login.code == 401, "\(login)")
        let redis = sluice.queue.redis
        #expect(
            try await redis.send("GET", try await Self.loginFailures("127.0.0.2", work: proxy.directory))
                .string == "1")
        #expect(
            try await redis.send(
                "EXISTS", try await Self.loginFailures(NginxProxy.spoofed, work: proxy.directory)
            ).int == 0)
        #expect(
            try await redis.send(
                "EXISTS", try await Self.loginFailures("127.0.0.1", work: proxy.directory)
            ).int == 0)

        // Straight to Sluice: from 127.0.0.2 (not a trusted proxy) the header is ignored; from
        // 127.0.0.1 (one) it is believed.
        let direct = try await proxy.curl(
            ["-H", "X-Forwarded-For: 198.51.100.9", "\(sluice.url)/readyz"], from: "127.0.0.2")
        #expect(direct.code == 200, "\(direct)")
        let trusted = try await proxy.curl(
            ["-H", "X-Forwarded-For: 198.51.100.10", "\(sluice.url)/openapi.json"], from: "127.0.0.1")
        #expect(trusted.code == 200)

        let log = proxy.logPath(sluice)
        let logged = await eventually(timeout: .seconds(30)) {
            Self.logLines(log, path: "/openapi.json").contains { $0.contains("client=198.51.100.10") }
        }
        #expect(logged, "\(contents(of: log).suffix(3000))")
        for path in [
            "/healthz", "/v1/jobs", "/v1/jobs/\(id)", "/v1/chat/completions", "/v1/jobs/bulk",
            "/v1/jobs/\(streamedID)/events", "/ui/login",
        ] {
            let lines = Self.logLines(log, path: path)
            #expect(
                !lines.isEmpty && lines.allSatisfy { $0.contains("client=127.0.0.2") }, "\(path): \(lines)")
        }
        #expect(Self.logLines(log, path: "/readyz").allSatisfy { $0.contains("client=127.0.0.2") })
        #expect(!Self.logLines(log, path: "/readyz").isEmpty)
        #expect(!contents(of: log).contains("client=\(NginxProxy.spoofed)"))
        #expect(!contents(of: log).contains("client=198.51.100.9"))
        // Headers are not logged: the key a request carried is in no request line.
        #expect(!contents(of: log).split(separator: "\n").contains { $0.hasSuffix(" request") && $0.contains(sluice.adminKey) })
    }

    // MARK: - Reading

    /// The Redis key of the dashboard's failed-login count for `address` (DashboardSessions:
    /// the address's SHA-256, here from sha256sum).
    static func loginFailures(_ address: String, work: String) async throws -> String {
        let (status, output) = try await runProgram(
            "/bin/sh", ["-c", "printf %s '\(address)' | sha256sum"], in: work)
        try #require(status == 0, "\(output)")
        return KeyLayout.root + "ui:login-failures:" + output.prefix { $0 != " " }
    }

    /// The access log's lines for exactly `path`.
    static func logLines(_ log: String, path: String) -> [String] {
        contents(of: log).split(separator: "\n").map(String.init).filter {
            $0.contains(" path=\(path) ") && $0.hasSuffix("request")
        }
    }

    static func string(_ field: String, in json: String) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?[field] as? String
    }

    static func csrf(in html: String) -> String? {
        guard let range = html.range(of: #"name="csrf" value=""#) else { return nil }
        return String(html[range.upperBound...].prefix { $0 != "\"" })
    }

    /// Every value of a directive (`name value;`) in an nginx file.
    static func values(_ name: String, in conf: String) -> [String] {
        conf.split(separator: "\n").compactMap { line in
            let words = line.trimmingCharacters(in: .whitespaces).split(separator: " ")
            guard words.count == 2, words[0] == name, words[1].hasSuffix(";") else { return nil }
            return String(words[1].dropLast())
        }
    }

    /// nginx's time (`660s`, `1h`, `5m`) in seconds.
    static func seconds(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        guard let unit = text.last.flatMap({ units[$0] }), let number = Double(text.dropLast()) else {
            return nil
        }
        return number * unit
    }

    /// The first `client_max_body_size` after `marker`, in bytes.
    static func bodyLimit(_ conf: String, after marker: String) throws -> Int {
        let start = try #require(conf.range(of: marker)).upperBound
        let value = try #require(values("client_max_body_size", in: String(conf[start...])).first)
        let units: [Character: Int] = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30]
        return try #require(
            value.last.flatMap { units[$0] }.flatMap { unit in Int(value.dropLast()).map { $0 * unit } })
    }
}

/// A real nginx running deploy/nginx.conf in its own folder (prefix, pid, logs, temp files), on
/// a free loopback port, with a self-signed certificate for 127.0.0.1.
struct NginxProxy {
    let process: ChildProcess
    let directory: String
    let port: Int
    let certificate: String

    /// What every request through the proxy claims in its own X-Forwarded-For.
    static let spoofed = "198.51.100.7"

    var url: String { "https://127.0.0.1:\(port)" }

    func logPath(_ sluice: RunningSluice) -> String { sluice.work + "/up.log" }

    static func start(_ nginx: String, upstream: String, work: String) async throws -> NginxProxy {
        let directory = work + "/nginx"
        try FileManager.default.createDirectory(
            atPath: directory + "/logs", withIntermediateDirectories: true)
        let certificate = directory + "/cert.pem"
        let key = directory + "/key.pem"
        let made = try await runProgram(
            "openssl",
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", certificate,
                "-days", "2", "-subj", "/CN=localhost", "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            in: directory)
        try #require(
            made.status == 0,
            "openssl could not make a certificate (is openssl installed?): \(made.output)")
        let shipped = try String(contentsOfFile: ReverseProxyTests.shipped, encoding: .utf8)
        let upstreamAddress = String(upstream.dropFirst("http://".count))
        // A port picked here may be taken before nginx binds it: a few tries.
        for attempt in 1...5 {
            let port = try Self.freeLoopbackPort()
            var site = shipped
            site = site.replacingOccurrences(
                of: "server 127.0.0.1:8080;", with: "server \(upstreamAddress);")
            site = site.replacingOccurrences(
                of: "listen 443 ssl http2;", with: "listen 127.0.0.1:\(port) ssl http2;")
            site = site.replacingOccurrences(of: "    listen [::]:443 ssl http2;\n", with: "")
            site = site.replacingOccurrences(of: "/etc/ssl/sluice/fullchain.pem", with: certificate)
            site = site.replacingOccurrences(of: "/etc/ssl/sluice/privkey.pem", with: key)
            // No port 80 in a test: the redirect server is cut off.
            let redirect = try #require(site.range(of: "# Plain HTTP only redirects"))
            site = String(site[..<redirect.lowerBound])
            try #require(
                site.contains("server \(upstreamAddress);") && site.contains(certificate)
                    && site.contains("127.0.0.1:\(port)"))
            try site.write(toFile: directory + "/sluice.conf", atomically: true, encoding: .utf8)
            // The main file Debian's /etc/nginx/nginx.conf stands for, everything under `directory`.
            let main = """
                \(getuid() == 0 ? "user root root;" : "")
                worker_processes 1;
                pid \(directory)/nginx.pid;
                error_log \(directory)/error.log info;
                events { worker_connections 256; }
                http {
                    access_log \(directory)/access.log;
                    client_body_temp_path \(directory)/body;
                    proxy_temp_path \(directory)/proxy;
                    fastcgi_temp_path \(directory)/fastcgi;
                    uwsgi_temp_path \(directory)/uwsgi;
                    scgi_temp_path \(directory)/scgi;
                    include \(directory)/sluice.conf;
                }

                """
            try main.write(toFile: directory + "/nginx.conf", atomically: true, encoding: .utf8)
            let output = directory + "/nginx.out"
            let process = try ChildProcess.spawn(
                nginx,
                arguments: [
                    "-p", directory, "-e", directory + "/error.log", "-c", directory + "/nginx.conf", "-g",
                    "daemon off;",
                ],
                outputPath: output)
            let proxy = NginxProxy(
                process: process, directory: directory, port: port, certificate: certificate)
            let up = try await eventually(timeout: .seconds(20)) {
                if process.hasExited { return true }
                return try await proxy.curl(["\(proxy.url)/healthz"]).code == 200
            }
            if up, !process.hasExited { return proxy }
            let log = contents(of: directory + "/error.log") + contents(of: output)
            if !process.hasExited { _ = await process.stop() }
            guard log.contains("Address already in use"), attempt < 5 else {
                throw ProxyError(message: "nginx did not start: \(log)")
            }
        }
        throw ProxyError(message: "nginx found no free port")
    }

    /// curl over HTTPS (this proxy's certificate trusted) from `from`, claiming `spoofed` in
    /// X-Forwarded-For unless the arguments set it. Returns the status (0 when no answer) and body.
    func curl(_ arguments: [String], from: String = "127.0.0.2") async throws -> (
        code: Int, body: String
    ) {
        let forwarded =
            arguments.contains { $0.hasPrefix("X-Forwarded-For:") }
            ? [] : ["-H", "X-Forwarded-For: \(Self.spoofed)"]
        let (_, output) = try await runProgram(
            "curl",
            [
                "-sS", "--cacert", certificate, "--interface", from, "--max-time", "60", "-w",
                "\n%{http_code}",
            ] + forwarded + arguments,
            in: directory, timeout: .seconds(70))
        var lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        let code = lines.popLast().flatMap { Int($0) } ?? 0
        return (code, lines.joined(separator: "\n"))
    }

    /// curl left running (an event stream), its output in `output`.
    func spawnCurl(_ arguments: [String], output: String) throws -> ChildProcess {
        try ChildProcess.spawn(
            "curl",
            arguments: [
                "-sS", "--cacert", certificate, "--interface", "127.0.0.2", "--max-time", "60", "-H",
                "X-Forwarded-For: \(Self.spoofed)",
            ] + arguments,
            outputPath: output)
    }
}

struct ProxyError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

extension NginxProxy {
    /// A loopback TCP port free now (the kernel's pick for port 0, released at once).
    static func freeLoopbackPort() throws(ProxyError) -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw ProxyError(message: "socket: \(errno)") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw ProxyError(message: "bind: \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
