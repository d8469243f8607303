import ArgumentParser
import Crypto
import Foundation
import SluiceClient
import SluiceCore

/// Where the API is and which key to use: flags, else `SLUICE_URL` and `SLUICE_API_KEY`.
struct ClientOptions: ParsableArguments {
    @Option(help: "The API's base URL (default: $SLUICE_URL, else http://127.0.0.1:8080).") var url: String?
    @Option(help: "The API key (default: $SLUICE_API_KEY). Prefer the variable: flags show in `ps`.") var apiKey: String?
    @Flag(help: "Print the API's JSON, for scripts.") var json = false

    /// Runs `body` with a client of the configured server, closed afterwards.
    func withClient<T>(_ body: (SluiceClient) async throws -> T) async throws -> T {
        let environment = ProcessInfo.processInfo.environment
        let base = url ?? environment["SLUICE_URL"] ?? "http://127.0.0.1:8080"
        guard let key = apiKey ?? environment["SLUICE_API_KEY"], !key.isEmpty else {
            throw CommandFailure(exitCode: 2, message: "no API key: set SLUICE_API_KEY (or pass --api-key)")
        }
        return try await SluiceClient.with(url: base, apiKey: key, body)
    }
}

/// The client commands' exit codes, beyond 0 (success) and 2 (bad arguments or a 4xx saying
/// the request is wrong).
enum ClientExit {
    static let jobDidNotSucceed: Int32 = 1  // wait/batch --wait: a job ended failed, dead, cancelled or expired; cancel: 409
    static let unreachable: Int32 = 3  // no answer, a 5xx, or an answer that is not the API's
    static let unauthorized: Int32 = 4  // 401, 403
    static let notFound: Int32 = 5  // 404
    static let timedOut: Int32 = 6  // wait --timeout ran out
    static let limited: Int32 = 7  // 429

    /// Runs `body`, mapping a client error to its message and exit code.
    static func wrap(_ body: () async throws -> Void) async throws {
        try await CommandFailure.wrap {
            do { try await body() } catch let error as ClientError {
                throw CommandFailure(exitCode: code(for: error), message: error.description)
            }
        }
    }

    /// The exit code for a client error.
    static func code(for error: ClientError) -> Int32 {
        switch error {
        case .unreachable, .unexpectedAnswer: unreachable
        case .invalidArgument: 2
        case .api(let status, _, _, _, _):
            switch status {
            case 401, 403: unauthorized
            case 404: notFound
            case 409: jobDidNotSucceed
            case 429: limited
            case 400..<500: 2
            default: unreachable
            }
        }
    }
}

/// Reads a file, or stdin for "-".
func readInput(_ path: String) throws -> Data {
    if path == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CommandFailure(exitCode: 2, message: "cannot read \(path)")
    }
    return data
}

/// The API's JSON as the CLI prints it (`--json`, a job's result): parsed and written again
/// with sorted keys, as the CLI always has. What it formats holds the provider's request and
/// result (any JSON at all), so it stays untyped; it only reformats, nothing reads it.
enum PrintedJSON {
    /// The answer's top-level object (empty when it is not one).
    static func object(_ json: Data) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: json)) as? [String: Any] ?? [:]
    }

    /// `value` as compact JSON with sorted keys.
    static func text(_ value: Any) -> String {
        (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]))
            .map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
    }
}

/// Prints the API's answer (or a document made of its parts) for `--json`.
func printJSON(_ object: Any) {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    say(String(decoding: data, as: UTF8.self))
}

/// Prints the API's answer for `--json` byte for byte as the API wrote it (its one writer: keys
/// sorted, `/` not escaped), so `sluice get --json` and `GET /v1/jobs/{id}` read the same; an
/// answer that is not a JSON object prints as `{}`.
func printJSON(_ json: Data) {
    guard (try? JSONSerialization.jsonObject(with: json)) is [String: Any] else { return printJSON([String: Any]()) }
    say(String(decoding: json, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
}

/// "job_…  succeeded  lane demo  attempt 1/3" and, when finished, the result or the error.
func describeJob(_ answer: SluiceClient.Answer<SluiceClient.JobSummary>) -> String {
    let job = answer.value
    var line = "\(job.id ?? "?")  \(job.status ?? "?")"
    if let lane = job.lane { line += "  lane \(lane)" }
    if let attempts = job.attempts, let max = job.maxAttempts { line += "  attempts \(attempts)/\(max)" }
    if let error = job.error { line += "\nerror: " + printable(error) }
    if job.hasResult, let result = PrintedJSON.object(answer.json)["result"] { line += "\nresult: \(PrintedJSON.text(result))" }
    return line
}

let terminalStates: Set<String> = ["succeeded", "failed", "cancelled", "expired", "dead"]

/// Text from the server made safe for a terminal: its control characters (ESC, BEL, CR, C1,
/// newlines) shown as U+FFFD. A job's error and its timeline's notes carry a provider's words: an
/// escape sequence in them must not rewrite the operator's screen, title or clipboard.
func printable(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return text }
    var scalars = String.UnicodeScalarView()
    for scalar in text.unicodeScalars { scalars.append(scalar.properties.generalCategory == .control ? "\u{FFFD}" : scalar) }
    return String(scalars)
}

/// `sluice submit`: one job, from flags, a file or stdin.
struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit one job.",
        discussion: """
            With --lane (or --provider and --model), the input is the provider request body; without, it is a \
            whole job object as POST /v1/jobs takes it. The input is --request, else --file, else stdin. \
            Prints the job id (or the API's JSON with --json).
            """)
    @OptionGroup var client: ClientOptions
    @Option(help: "The lane.") var lane: String?
    @Option(help: "The provider (with --model: lane provider/model).") var provider: String?
    @Option(help: "The model.") var model: String?
    @Option(help: "The input, inline JSON.") var request: String?
    @Option(help: "The input, from a file ('-': stdin).") var file: String?
    @Option(help: "Priority, -100 to 100 (higher first).") var priority: Int?
    @Option(help: "Attempts before the job is dead.") var maxAttempts: Int?
    @Option(help: "Makes a resubmission return the first job.") var idempotencyKey: String?
    @Option(help: "Metadata, a JSON object.") var metadata: String?
    @Option(help: "Where to deliver the result.") var callbackURL: String?
    @Flag(help: "Then wait for the job to finish and print it.") var wait = false

    func run() async throws {
        try await ClientExit.wrap {
            let input = try request.map { Data($0.utf8) } ?? readInput(file ?? "-")
            guard let parsed = try? JSONSerialization.jsonObject(with: input), var object = parsed as? [String: Any] else {
                throw CommandFailure(exitCode: 2, message: "the input is not a JSON object")
            }
            if lane != nil || provider != nil {
                object = ["request": object]
                if let lane { object["lane"] = lane }
                if let provider { object["provider"] = provider }
                if let model { object["model"] = model }
            }
            if let priority { object["priority"] = priority }
            if let maxAttempts { object["max_attempts"] = maxAttempts }
            if let callbackURL { object["callback_url"] = callbackURL }
            if let metadata {
                guard let value = try? JSONSerialization.jsonObject(with: Data(metadata.utf8)) as? [String: Any] else {
                    throw CommandFailure(exitCode: 2, message: "--metadata is not a JSON object")
                }
                object["metadata"] = value
            }
            let body = try JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])
            try await client.withClient { api in
                let accepted = try await api.submit(body, idempotencyKey: idempotencyKey)
                guard let id = accepted.value.id else { throw CommandFailure(exitCode: 3, message: "the answer has no job id") }
                if wait {
                    try await waitAndReport(api, id: id, timeout: nil, json: client.json)
                } else if client.json {
                    printJSON(accepted.json)
                } else {
                    say(id)
                }
            }
        }
    }
}

/// `sluice status ID`.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a job: its status, attempts, result or error.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "The job id.") var id: String
    @Flag(help: "Also show its timeline.") var events = false
    @Flag(help: "Follow it: print each event as it happens (its timeline first); exit with its outcome (0 succeeded, 1 otherwise).")
    var follow = false

    func run() async throws {
        try await ClientExit.wrap {
            if follow {
                try await client.withClient { api in try await followJob(api, id: id, json: client.json) }
                return
            }
            let (job, timeline) = try await client.withClient { api in
                (try await api.job(id), events ? try await api.events(id) : nil)
            }
            if client.json {
                var document = PrintedJSON.object(job.json)
                if let timeline { document["events"] = PrintedJSON.object(timeline.json)["data"] as? [Any] ?? [] }
                printJSON(document)
                return
            }
            say(describeJob(job))
            for event in timeline?.value ?? [] {
                let at = event.at.map { Date(timeIntervalSince1970: $0) }.map { ISO8601DateFormatter().string(from: $0) } ?? "?"
                say(printable("  \(at)  \(event.status ?? "?")" + (event.info.map { "  \($0)" } ?? "")))
            }
        }
    }
}

/// Prints a job's events as they happen (`GET /v1/jobs/{id}/events` as an event stream), one
/// line each (`--json`: each event's data), until its `end`; a stream cut short is resumed from
/// the last event id. Throws the exit code for a job that did not succeed.
func followJob(_ api: SluiceClient, id: String, json: Bool) async throws {
    var last: String?
    var outcome: String??
    var attempts = 0
    while outcome == nil {
        if attempts > 0 {
            guard attempts <= 5 else { throw CommandFailure(exitCode: 5, message: "the event stream of \(id) kept ending early") }
            try await Task.sleep(for: .seconds(1))
        }
        attempts += 1
        last = try await api.streamJob(id, lastEventID: last) { event in
            let data = event.object
            if json {
                say(event.data)
            } else if event.event == "status" {
                let at = (data["at"] as? Double).map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: $0)) } ?? "?"
                say(printable("\(at)  \(data["status"] as? String ?? "?")" + ((data["info"] as? String).map { "  \($0)" } ?? "")))
            }
            if event.event == "end" {
                outcome = .some(data["status"] as? String)
                return false
            }
            return true
        }
    }
    let status = outcome.flatMap { $0 }
    if !json { say(printable("\(id) \(status ?? "gone")")) }
    if status != "succeeded" {
        throw CommandFailure(exitCode: ClientExit.jobDidNotSucceed, message: "\(id) ended \(status ?? "gone")")
    }
}

/// `sluice wait ID`.
struct Wait: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Wait for a job to finish, then show it. Exit 0 if it succeeded, 1 if it ended otherwise, 6 on --timeout.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "The job id.") var id: String
    @Option(help: "Give up after this many seconds (default: wait as long as it takes).") var timeout: Double?

    func run() async throws {
        try await ClientExit.wrap {
            try await client.withClient { api in try await waitAndReport(api, id: id, timeout: timeout, json: client.json) }
        }
    }
}

/// Long-polls until the job is finished (or `timeout` passes), prints it, and throws the exit
/// code for a job that did not succeed.
func waitAndReport(_ api: SluiceClient, id: String, timeout: Double?, json: Bool) async throws {
    let giveUp = try timeout.map { seconds in
        guard let duration = Bounded.duration(seconds: seconds, in: .zero...(.seconds(366 * 86_400))) else {
            throw CommandFailure(exitCode: 2, message: "--timeout must be a number of seconds from 0 to one year")
        }
        return ContinuousClock.now + duration
    }
    var job: SluiceClient.Answer<SluiceClient.JobSummary>?
    while true {
        var seconds = 60
        if let giveUp {
            let left = giveUp - ContinuousClock.now
            guard left > .zero else {
                throw CommandFailure(exitCode: ClientExit.timedOut, message: "\(id) had not finished after \(timeout!) s (status \(job?.value.status ?? "?"))")
            }
            seconds = max(0, min(60, Int(left.components.seconds)))
        }
        let answer = try await api.job(id, wait: seconds)
        job = answer
        if terminalStates.contains(answer.value.status ?? "") {
            if json { printJSON(answer.json) } else { say(describeJob(answer)) }
            if answer.value.status != "succeeded" {
                throw CommandFailure(exitCode: ClientExit.jobDidNotSucceed, message: "\(id) ended \(answer.value.status ?? "?")")
            }
            return
        }
        if seconds == 0 { try await Task.sleep(for: .milliseconds(200)) }
    }
}

/// `sluice cancel ID`.
struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cancel a job (a running one at its worker's next report). Exit 1 if it had already finished.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "The job id.") var id: String

    func run() async throws {
        try await ClientExit.wrap {
            let job = try await client.withClient { api in try await api.cancel(id) }
            if client.json { printJSON(job.json) } else {
                say("\(id) \(job.value.status ?? "?")" + (job.value.cancelRequested == true ? " (cancel requested)" : ""))
            }
        }
    }
}

/// `sluice retry ID`.
struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Retry a dead or failed job as a new job (the old one stays as it is); prints the new job's id. Exit 1 if the job is in another state.")
    @OptionGroup var client: ClientOptions
    @Argument(help: "The dead or failed job's id.") var id: String

    func run() async throws {
        try await ClientExit.wrap {
            let job = try await client.withClient { api in try await api.retry(id) }
            if client.json { printJSON(job.json) } else { say(job.value.id ?? "?") }
        }
    }
}

/// `sluice queues`.
struct Queues: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Per lane: ready, leased and delayed jobs, and the oldest ready job's age (admin key).")
    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await ClientExit.wrap {
            let answer = try await client.withClient { api in try await api.queues() }
            if client.json {
                printJSON(["data": PrintedJSON.object(answer.json)["data"] as? [Any] ?? []])
                return
            }
            let lanes = answer.value
            let width = max(4, lanes.map { ($0.lane ?? "").count }.max() ?? 0)
            func row(_ cells: [String]) -> String {
                cells[0].padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                    + cells.dropFirst().map { String(repeating: " ", count: max(0, 9 - $0.count)) + $0 }.joined(separator: " ")
            }
            say(row(["LANE", "READY", "LEASED", "DELAYED", "OLDEST"]))
            for lane in lanes {
                let oldest = lane.oldestReadyAgeSeconds.map { String(format: "%.1fs", $0) } ?? "-"
                say(row([lane.lane ?? "?", "\(lane.ready ?? 0)", "\(lane.leased ?? 0)", "\(lane.delayed ?? 0)", oldest]))
            }
        }
    }
}

/// `sluice batch FILE.jsonl`.
struct Batch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit a JSONL file of jobs (one POST /v1/jobs object a line), with a progress bar.",
        discussion: """
            The file goes in chunks of --chunk lines; each chunk is all or nothing. Each line without an \
            idempotency_key gets one made of its line number and content, so running the same file again \
            (say, after fixing a bad line) submits only the lines not yet accepted. With --wait, a second \
            bar follows the jobs to completion; exit 1 if any did not succeed.
            """)
    @OptionGroup var client: ClientOptions
    @Argument(help: "The JSONL file ('-': stdin).") var file: String
    @Option(help: "Lines per request.") var chunk = 5_000
    @Flag(help: "Then follow the jobs until every one has finished.") var wait = false
    @Flag(help: "Do not add idempotency keys (faster; a rerun submits everything again).") var noIdempotency = false

    func run() async throws {
        try await ClientExit.wrap {
            guard chunk >= 1 else { throw CommandFailure(exitCode: 2, message: "--chunk must be at least 1") }
            try await client.withClient { api in try await submit(api) }
        }
    }

    func submit(_ api: SluiceClient) async throws {
        let data = try readInput(file)
        let batchTag = file == "-" ? "stdin" : URL(fileURLWithPath: file).lastPathComponent
        var lines: [(number: Int, body: Data)] = []
        var number = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            number += 1
            if line.allSatisfy({ $0 == 32 || $0 == 13 || $0 == 9 }) { continue }
            lines.append((number, noIdempotency ? Data(line) : try Self.withIdempotencyKey(Data(line), line: number, tag: batchTag)))
        }
        guard !lines.isEmpty else { throw CommandFailure(exitCode: 2, message: "\(file) holds no jobs") }
        guard wait else {
            _ = try await send(api, lines)
            return
        }
        // The key's event stream is opened before the jobs go in, so that no job's end is missed.
        var bar: ProgressBar?
        var replayedCount = 0
        let (ids, outcomes) = try await api.follow(
            submit: {
                let sent = try await send(api, lines)
                replayedCount = sent.replayed.count
                bar = ProgressBar(label: "finished", total: sent.ids.count)
                return sent
            },
            progress: { bar?.update($0) })
        bar?.finish()
        let succeeded = outcomes["succeeded", default: 0]
        if client.json {
            printJSON(["count": ids.count, "replayed": replayedCount, "ids": ids, "outcomes": outcomes])
        } else {
            say("finished: " + outcomes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
        }
        if succeeded != ids.count {
            throw CommandFailure(exitCode: ClientExit.jobDidNotSucceed, message: "\(ids.count - succeeded) of \(ids.count) jobs did not succeed")
        }
    }

    /// Submits `lines` in chunks with a progress bar and says how many went in; the ids, and
    /// those that were already there (idempotent replays).
    func send(_ api: SluiceClient, _ lines: [(number: Int, body: Data)]) async throws -> (ids: [String], replayed: [String]) {
        let bar = ProgressBar(label: "submitted", total: lines.count)
        var ids: [String] = []
        var replayed: [String] = []
        for start in stride(from: 0, to: lines.count, by: chunk) {
            let part = lines[start..<min(start + chunk, lines.count)]
            var body = Data()
            for line in part { body.append(line.body); body.append(10) }
            let data: [SluiceClient.Accepted]
            do throws(ClientError) { data = try await api.submitBulk(jsonLines: body) } catch {
                bar.finish()
                // The server numbers lines within the chunk; say which line of the file it is.
                var message = "\(error)"
                if case .api(_, _, _, let param?, _) = error, param.hasPrefix("line "), let within = Int(param.dropFirst(5).prefix { $0.isNumber }),
                    within >= 1, within <= part.count {
                    message += " — that is line \(part[part.startIndex + within - 1].number) of \(file)"
                }
                if start > 0 { message += ". The \(start) jobs before this chunk were accepted; fix the line and run again: they will not be submitted twice" + (noIdempotency ? " (unless --no-idempotency)" : "") }
                throw CommandFailure(exitCode: ClientExit.code(for: error), message: message)
            }
            for entry in data {
                if let id = entry.id {
                    ids.append(id)
                    if entry.created == false { replayed.append(id) }
                }
            }
            bar.update(ids.count)
        }
        bar.finish()
        if client.json && !wait {
            printJSON(["count": ids.count, "replayed": replayed.count, "ids": ids])
        } else if !client.json {
            say("submitted \(ids.count) jobs" + (replayed.isEmpty ? "" : " (\(replayed.count) already there from an earlier run)"))
        }
        return (ids, replayed)
    }

    /// Adds `idempotency_key` (from the line's number and content) unless the line has one.
    static func withIdempotencyKey(_ line: Data, line number: Int, tag: String) throws -> Data {
        guard var object = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any] else {
            throw CommandFailure(exitCode: 2, message: "line \(number): not a JSON object")
        }
        guard object["idempotency_key"] == nil else { return line }
        let digest = SHA256.hash(data: line).prefix(12).map { String(format: "%02x", $0) }.joined()
        object["idempotency_key"] = "batch:\(tag):\(number):\(digest)"
        return try JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])
    }
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
final class ProgressBar {
    let label: String
    let total: Int
    let started = ContinuousClock.now
    let visible = isatty(2) == 1
    var lastDrawn = ContinuousClock.now - .seconds(1)

    init(label: String, total: Int) {
        self.label = label
        self.total = total
    }

    func update(_ done: Int) {
        guard visible, ContinuousClock.now - lastDrawn > .milliseconds(100) || done == total else { return }
        lastDrawn = .now
        let width = 30
        let filled = total == 0 ? width : width * done / total
        let elapsed = Double((ContinuousClock.now - started).components.attoseconds) / 1e18
            + Double((ContinuousClock.now - started).components.seconds)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let line = "\r\(label) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(done)/\(total) \(String(format: "%.0f", rate))/s"
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        if visible { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
