import SluiceCore
import Testing

@Suite struct MetricsKeySettingTests {
    /// `server.metrics_key` is `required` or `none` (the default); anything else names the key.
    @Test func metricsKeyIsRequiredOrNone() throws {
        #expect(try SluiceConfiguration.load(yaml: "server: { port: 1 }\n").server.metricsKeyRequired == false)
        #expect(try SluiceConfiguration.load(yaml: "server: { metrics_key: required }\n").server.metricsKeyRequired == true)
        #expect(try SluiceConfiguration.load(yaml: "server: { metrics_key: none }\n").server.metricsKeyRequired == false)
        #expect {
            try SluiceConfiguration.load(yaml: "server: { metrics_key: yes please }\n")
        } throws: { "\($0)".contains("server.metrics_key") }
    }
}
