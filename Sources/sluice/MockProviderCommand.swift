import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceMock
import UnixSignals

/// `sluice mock-provider`: a fake OpenAI/Anthropic server for tests, benchmarks and the demo.
struct MockProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mock-provider",
        abstract: "Serve fake OpenAI and Anthropic routes with configurable latency, limits and faults.",
        discussion: """
            Routes: POST /v1/chat/completions, /v1/completions, /v1/embeddings (OpenAI) and /v1/messages \
            (Anthropic); the batch APIs: POST /v1/files, GET /v1/files/{id}[/content], POST /v1/batches, \
            GET /v1/batches/{id}, POST /v1/batches/{id}/cancel (OpenAI) and POST /v1/messages/batches, \
            GET /v1/messages/batches/{id}[/results], POST /v1/messages/batches/{id}/cancel (Anthropic); GET /stats (add ?ids=1 for the per-id counts), POST /stats/reset, GET /healthz. \
            Over a limit it answers 429 with the headers the real API sends.
            """)

    @Option(help: "Listen here (0: any free port; the ready line names it).") var port = 9100
    @Option(help: "Listen on this address.") var host = "127.0.0.1"
    @Option(help: "Latency: 0, 50ms, 10ms..200ms (uniform), or lognormal:P50,P99 such as lognormal:200ms,2s.")
    var latency = "0"
    @Option(help: "Requests per minute (sliding window).") var rpm: Int?
    @Option(help: "Tokens per minute: prompt (body bytes / 4) plus max_tokens.") var tpm: Int?
    @Option(help: "At most this many at once; over it, 429 with headers.") var concurrency: Int?
    @Option(help: "A limit it does not announce: over it, a bare 429.") var hiddenConcurrency: Int?
    @Option(help: "Fraction answered 500.") var errorRate = 0.0
    @Option(help: "Fraction left hanging (then 504 after --timeout-delay).") var timeoutRate = 0.0
    @Option(help: "Fraction cut off mid-answer (the connection closes).") var resetRate = 0.0
    @Option(help: "How long a timeout hangs, e.g. 120s.") var timeoutDelay = "120s"
    @Option(help: "How long a batch stays in progress before its answers show, e.g. 2s.") var batchDelay = "500ms"
    @Option(help: "Fraction of batch lines that expire (--error-rate makes errored lines).") var batchExpireRate = 0.0
    @Option(help: "How long a batch create call waits before answering, the batch already stored, e.g. 5s.") var batchCreateDelay = "0"
    @Option(help: "At most this many files and this many batches kept in memory (each); the oldest go first.") var batchMaxStored = 256
    @Option(help: "At most this many bytes of batch files and answers in memory; the oldest go first.") var batchMaxBytes = 1 << 30
    @Flag(help: "Keep each accepted request's arrival time; /stats then reports most_in_any_60s.") var recordArrivals = false

    func run() async throws {
        try await CommandFailure.wrap {
            var settings = MockConfiguration()
            do {
                settings.latency = try MockConfiguration.Latency(parsing: latency)
                guard let delay = Duration(parsing: timeoutDelay) else {
                    throw MockConfigurationError("--timeout-delay '\(timeoutDelay)' is not a duration")
                }
                settings.timeoutDelay = delay
                settings.requestsPerMinute = rpm
                settings.tokensPerMinute = tpm
                settings.concurrency = concurrency
                settings.hiddenConcurrency = hiddenConcurrency
                settings.errorRate = errorRate
                settings.timeoutRate = timeoutRate
                settings.resetRate = resetRate
                settings.recordArrivals = recordArrivals
                guard let batchDelay = Duration(parsing: batchDelay) else {
                    throw MockConfigurationError("--batch-delay '\(self.batchDelay)' is not a duration")
                }
                settings.batchDelay = batchDelay
                guard let batchCreateDelay = Duration(parsing: batchCreateDelay) else {
                    throw MockConfigurationError("--batch-create-delay '\(self.batchCreateDelay)' is not a duration")
                }
                settings.batchCreateDelay = batchCreateDelay
                settings.batchExpireRate = batchExpireRate
                settings.batchMaxStored = batchMaxStored
                settings.batchMaxBytes = batchMaxBytes
                try settings.validate()
            } catch {
                throw CommandFailure(exitCode: 2, message: "\(error)")
            }
            var logger = Logger(label: "sluice.mock")
            logger.logLevel = .warning
            let mock = MockProvider(configuration: settings)
            let host = host
            let latency = settings.latency
            let application = mock.application(host: host, port: port, logger: logger) { port in
                say("mock provider on http://\(host):\(port) (latency \(latency))")
            }
            let group = ServiceGroup(services: [application], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
        }
    }
}
