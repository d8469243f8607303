import SluiceCore
import Testing

/// `dashboard:` in sluice.yaml: its defaults, its keys, and a clear error naming a bad one.
@Suite struct DashboardConfigurationTests {
    @Test func absentIsOnWithTheDefaults() throws {
        let dashboard = try SluiceConfiguration.load(yaml: "server: { port: 1 }\n").dashboard
        #expect(dashboard.enabled)
        #expect(dashboard.sessionTTL == .seconds(8 * 3600))
        #expect(dashboard.loginAttemptsPerMinute == 20)
        #expect(dashboard.refresh == .seconds(2))
        #expect(!dashboard.trustForwardedProto)
    }

    @Test func everyKeyIsRead() throws {
        let dashboard = try SluiceConfiguration.load(
            yaml: "dashboard: { enabled: false, session_ttl: 30m, login_attempts_per_minute: 5, refresh: 10s, trust_forwarded_proto: true }\n"
        ).dashboard
        #expect(!dashboard.enabled)
        #expect(dashboard.sessionTTL == .seconds(1800))
        #expect(dashboard.loginAttemptsPerMinute == 5)
        #expect(dashboard.refresh == .seconds(10))
        #expect(dashboard.trustForwardedProto)
    }

    @Test func badValuesNameTheirKey() {
        for (yaml, key) in [
            ("dashboard: { enabled: maybe }", "dashboard.enabled"),
            ("dashboard: { session_ttl: 1m }", "dashboard.session_ttl"),
            ("dashboard: { session_ttl: 400d }", "dashboard.session_ttl"),
            ("dashboard: { session_ttl: 99999999999999999999h }", "dashboard.session_ttl"),
            ("dashboard: { login_attempts_per_minute: 0 }", "dashboard.login_attempts_per_minute"),
            ("dashboard: { login_attempts_per_minute: 1e300 }", "dashboard.login_attempts_per_minute"),
            ("dashboard: { refresh: 100ms }", "dashboard.refresh"),
            ("dashboard: { refresh: soon }", "dashboard.refresh"),
            ("dashboard: { refesh: 2s }", "dashboard.refesh"),
            ("dashboard: true", "dashboard"),
        ] {
            #expect(throws: ConfigurationError.self, "\(yaml)") { try SluiceConfiguration.load(yaml: yaml + "\n") }
            do {
                _ = try SluiceConfiguration.load(yaml: yaml + "\n")
            } catch {
                #expect(error.key == key, "\(yaml): \(error)")
            }
        }
    }
}
