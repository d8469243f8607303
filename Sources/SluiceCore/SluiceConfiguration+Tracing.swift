extension SluiceConfiguration {
    /// `tracing:`: OpenTelemetry traces of every job, exported over OTLP/HTTP (docs/tracing.md).
    /// Off by default; when off no span is made and no exporter runs.
    ///
    /// The exporter's headers (a collector's token) come from the environment only
    /// (`OTEL_EXPORTER_OTLP_HEADERS`), never from this file, and are never logged; the standard
    /// `OTEL_EXPORTER_OTLP_*` variables override what is set here.
    public struct Tracing: Sendable, Hashable {
        public var enabled = false
        /// The collector's OTLP/HTTP base URL (`http://collector:4318`; `/v1/traces` is added
        /// unless the URL already ends with it); nil: OTEL_EXPORTER_OTLP_ENDPOINT, else
        /// http://localhost:4318.
        public var endpoint: String?
        /// The `service.name` resource attribute.
        public var serviceName = "sluice"
        /// The share of new traces kept, 0…1; a trace the client started keeps the client's
        /// sampling decision (parent-based).
        public var sampleRatio = 1.0
        /// `http/protobuf` (the default) or `http/json`.
        public var `protocol` = "http/protobuf"

        public init() {}

        /// The URL spans are posted to, from `endpoint`.
        public var tracesURL: String? {
            guard let endpoint else { return nil }
            if endpoint.hasSuffix("/v1/traces") { return endpoint }
            return (endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint) + "/v1/traces"
        }

        /// The protocols the exporter speaks (OTLP/HTTP only: gRPC is not built in).
        public static let protocols = ["http/protobuf", "http/json"]

        /// Checks the values a file gave, naming the key that is wrong.
        public func check() throws(ConfigurationError) {
            if let endpoint {
                let lower = endpoint.lowercased()
                guard lower.hasPrefix("http://") || lower.hasPrefix("https://"), endpoint.utf8.count <= 2048 else {
                    throw ConfigurationError(key: "tracing.endpoint", problem: "must be an http:// or https:// URL such as http://localhost:4318")
                }
            }
            guard !serviceName.isEmpty, serviceName.utf8.count <= 200 else {
                throw ConfigurationError(key: "tracing.service_name", problem: "must be 1-200 characters")
            }
            guard Self.protocols.contains(`protocol`) else {
                throw ConfigurationError(key: "tracing.protocol", problem: "must be http/protobuf or http/json (gRPC is not built in)")
            }
        }
    }
}
