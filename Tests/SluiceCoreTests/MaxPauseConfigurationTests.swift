import SluiceCore
import Testing

/// `providers.<name>.max_pause`: how long a provider's retry-after may pause its lanes.
@Suite struct MaxPauseConfigurationTests {
    @Test func maxPauseDefaultsToTenMinutesAndIsBounded() throws {
        let configuration = try SluiceConfiguration.load(yaml: """
            providers:
              a: { kind: openai, base_url: "http://127.0.0.1:9001/v1" }
              b: { kind: openai, base_url: "http://127.0.0.1:9002/v1", max_pause: 90s }
            """)
        #expect(configuration.providers["a"]?.maxPause == .seconds(600))
        #expect(configuration.providers["b"]?.maxPause == .seconds(90))
        for bad in ["0s", "500ms", "25h", "1e300h", "inf", "-5s"] {
            #expect(throws: ConfigurationError.self, "\(bad)") {
                try SluiceConfiguration.load(yaml: "providers: { x: { kind: openai, base_url: 'http://a', max_pause: '\(bad)' } }")
            }
        }
    }
}
