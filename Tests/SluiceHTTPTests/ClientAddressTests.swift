import HTTPTypes
import SluiceCore
import Testing

@testable import SluiceHTTP

/// The API's one resolver of a request's client address (the access log, the dashboard's login
/// limit): `server.trusted_proxies`, and the old `dashboard.trust_forwarded_proto` kept working.
@Suite struct ClientAddressTests {
    static func headers(_ forwarded: String) -> HTTPFields { [HTTPField.Name("X-Forwarded-For")!: forwarded] }

    @Test func byDefaultTheHeaderIsNeverBelieved() {
        let resolver = SluiceAPI.Settings().clientAddress
        #expect(resolver.resolve(Self.headers("203.0.113.9"), peer: "127.0.0.1") == "127.0.0.1")
        #expect(resolver.resolve([:], peer: nil) == "unknown")
    }

    @Test func trustForwardedProtoAloneKeepsItsOldMeaning() {
        var settings = SluiceAPI.Settings()
        settings.dashboard.trustForwardedProto = true
        // Any peer's last hop, as the dashboard read it before trusted_proxies existed.
        #expect(settings.clientAddress.resolve(Self.headers("1.1.1.1, 203.0.113.9"), peer: "10.0.0.1") == "203.0.113.9")
        #expect(settings.clientAddress.resolve(Self.headers("not an address"), peer: "10.0.0.1") == "10.0.0.1")
    }

    @Test func trustedProxiesTakeOverFromTheOldSetting() throws {
        var settings = SluiceAPI.Settings()
        settings.dashboard.trustForwardedProto = true
        settings.trustedProxies = try TrustedProxies(parsing: ["10.0.0.0/8"])
        let resolver = settings.clientAddress
        // From an untrusted peer the header is ignored, the old setting notwithstanding.
        #expect(resolver.resolve(Self.headers("203.0.113.9"), peer: "192.0.2.1") == "192.0.2.1")
        #expect(resolver.resolve(Self.headers("1.1.1.1, 203.0.113.9, 10.0.0.2"), peer: "10.0.0.1") == "203.0.113.9")
    }

    /// The access log with the old setting and no trusted proxies logs what any client chose: a
    /// warning at startup says so; with trusted_proxies, or without the access log, none.
    @Test func anAccessLogAnyClientMayForgeIsWarnedOfAtStartup() throws {
        var settings = SluiceAPI.Settings()
        settings.dashboard.trustForwardedProto = true
        #expect(settings.clientAddress.startupWarning(accessLog: false) == nil)
        settings.accessLog = true
        #expect(settings.clientAddress.startupWarning(accessLog: settings.accessLog)?.contains("server.trusted_proxies") == true)
        settings.trustedProxies = try TrustedProxies(parsing: ["10.0.0.0/8"])
        #expect(settings.clientAddress.startupWarning(accessLog: settings.accessLog) == nil)
    }

    @Test func theConfigurationReachesTheSettings() throws {
        let configuration = try SluiceConfiguration.load(yaml: "server: { trusted_proxies: ['::1', 127.0.0.0/8], access_log: true }\n")
        let settings = SluiceAPI.Settings(configuration)
        #expect(settings.accessLog)
        #expect(settings.clientAddress.resolve(Self.headers("198.51.100.4"), peer: "::1") == "198.51.100.4")
    }
}
