import SluiceCore
import Testing

/// A client's `traceparent` (W3C Trace Context) and the `tracing:` section.
@Suite struct TraceParentTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test func aWellFormedHeaderIsReadAndWrittenBack() throws {
        let parsed = try #require(TraceParent(Self.valid))
        #expect(parsed.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(parsed.spanID == "00f067aa0ba902b7")
        #expect(parsed.sampled)
        #expect(parsed.text == Self.valid)
        // A later version: its first four fields, version 00 when written.
        let future = try #require(TraceParent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next"))
        #expect(future.text == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
        #expect(!future.sampled)
    }

    @Test func malformedHeadersAreRefused() {
        let bad = [
            "", "00", "garbage",
            Self.valid.uppercased(),  // upper-case hex
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // all-zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // all-zero span id
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // version ff
            Self.valid + "-extra",  // version 00 is exactly 55 bytes
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // a later version's extra without '-'
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  // not hex
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",  // wrong separators
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",  // flags not hex
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",  // multi-byte
            "01-" + String(repeating: "a", count: 600),  // past the length read at all
        ]
        for header in bad { #expect(TraceParent(header) == nil, "\(header)") }
    }

    @Test func theJobsEnvelopeCarriesTheTrace() {
        var envelope = JobEnvelope(route: "smart")
        envelope.trace = Self.valid
        let read = JobEnvelope(decoding: envelope.encoded)
        #expect(read.trace == Self.valid)
        #expect(read.route == "smart")
        // A job submitted without tracing stores nothing for it.
        #expect(!String(decoding: JobEnvelope(route: "smart").encoded, as: UTF8.self).contains("trace"))
    }

    @Test func tracingIsOffUnlessConfiguredAndItsValuesAreChecked() throws {
        #expect(try SluiceConfiguration.load(yaml: "").tracing.enabled == false)
        let on = try SluiceConfiguration.load(
            yaml: "tracing: { enabled: true, endpoint: 'http://collector:4318', service_name: api, sample_ratio: 0.25, protocol: http/json }")
        #expect(on.tracing.enabled)
        #expect(on.tracing.tracesURL == "http://collector:4318/v1/traces")
        #expect(on.tracing.serviceName == "api")
        #expect(on.tracing.sampleRatio == 0.25)
        #expect(on.tracing.protocol == "http/json")
        var explicit = SluiceConfiguration.Tracing()
        explicit.endpoint = "https://tempo.example/otlp/v1/traces"
        #expect(explicit.tracesURL == "https://tempo.example/otlp/v1/traces")
        let refused: [(String, String)] = [
            ("tracing: { sample_ratio: 1.5 }", "tracing.sample_ratio"),
            ("tracing: { sample_ratio: .nan }", "tracing.sample_ratio"),
            ("tracing: { endpoint: 'collector:4318' }", "tracing.endpoint"),
            ("tracing: { protocol: grpc }", "tracing.protocol"),
            ("tracing: { service_name: '' }", "tracing.service_name"),
            ("tracing: { headers: { authorization: x } }", "tracing.headers"),
        ]
        for (yaml, key) in refused {
            #expect(throws: ConfigurationError.self, "\(yaml)") { try SluiceConfiguration.load(yaml: yaml) }
            do {
                _ = try SluiceConfiguration.load(yaml: yaml)
            } catch {
                #expect(error.key == key, "\(yaml): \(error)")
            }
        }
    }
}
