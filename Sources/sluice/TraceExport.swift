import Foundation
import Logging
import OTel
import ServiceLifecycle
import SluiceCore

/// The OpenTelemetry backend of `sluice serve`, `work` and `up` (`tracing:`): bootstrapped here
/// and nowhere else, so the modules only ever see the Tracing API. Traces only: swift-otel's
/// logs and metrics stay off (Sluice logs with swift-log and serves its own /metrics).
enum TraceExport {
    /// The exporter's service when `tracing.enabled`, after bootstrapping the tracer and turning
    /// `JobTracing` on; nil (and nothing bootstrapped) when tracing is off. The service runs in the
    /// role's service group, listed first so it stops last and sends the spans still batched.
    static func bootstrap(
        _ settings: SluiceConfiguration.Tracing, logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> (any Service)? {
        guard settings.enabled else { return nil }
        // The standard switch turns it off again (swift-otel would refuse a bootstrap with nothing on).
        if environment["OTEL_SDK_DISABLED"]?.lowercased() == "true" {
            say("sluice: tracing is enabled in the configuration but OTEL_SDK_DISABLED=true: no traces")
            return nil
        }
        var configuration = OTel.Configuration.default
        configuration.serviceName = settings.serviceName
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        configuration.propagators = [.traceContext]
        // A client's trace keeps its own decision; a new one is kept with the configured ratio.
        configuration.traces.sampler = .parentBasedTraceIDRatio(ratio: settings.sampleRatio) ?? .parentBasedAlwaysOn
        configuration.traces.otlpExporter.protocol = settings.protocol == "http/json" ? .httpJSON : .httpProtobuf
        if let url = settings.tracesURL { configuration.traces.otlpExporter.endpoint = url }
        // swift-otel's own diagnostics go to our log (its export failures, say), at warning.
        var diagnostics = logger
        diagnostics[metadataKey: "component"] = "otel"
        configuration.diagnosticLogger = .custom(diagnostics)
        configuration.diagnosticLogLevel = .warning
        let service = try OTel.bootstrap(configuration: configuration, environment: environment)
        JobTracing.enable()
        // The endpoint without its query or user information (a token may ride there); headers never.
        let shown = settings.tracesURL.map(LoggableURL.shown) ?? "OTEL_EXPORTER_OTLP_ENDPOINT or http://localhost:4318"
        say("sluice: traces to \(shown) (\(settings.protocol), sample ratio \(settings.sampleRatio))")
        return service
    }
}
