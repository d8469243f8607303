import SluiceCore
import Testing

/// The rules configuration values keep, checked on the values themselves (no YAML).
@Suite struct ConfigurationPolicyTests {
    @Test func serverSettingsKeepTheirIdleTimeoutInRangeAndTheFacadeWaitUnderItsMaximum() throws {
        var server = SluiceConfiguration().server
        try server.check()
        server.idleTimeout = .milliseconds(999)
        #expect { try server.check() } throws: { ($0 as? ConfigurationError)?.key == "server.idle_timeout" }
        server.idleTimeout = .seconds(3601)
        #expect { try server.check() } throws: { ($0 as? ConfigurationError)?.key == "server.idle_timeout" }
        server.idleTimeout = .seconds(3600)
        server.facadeWait = server.facadeMaxWait + .seconds(1)
        #expect { try server.check() } throws: { ($0 as? ConfigurationError)?.key == "server.facade_wait" }
        server.facadeWait = server.facadeMaxWait
        try server.check()
    }

    @Test func metricsKeyIsRequiredOrNone() throws {
        #expect(try SluiceConfiguration.Server.metricsKeyRequired(parsing: nil) == false)
        #expect(try SluiceConfiguration.Server.metricsKeyRequired(parsing: "none") == false)
        #expect(try SluiceConfiguration.Server.metricsKeyRequired(parsing: "required") == true)
        #expect(throws: ConfigurationError.self) { try SluiceConfiguration.Server.metricsKeyRequired(parsing: "yes") }
    }

    @Test func retryMaximumIsNeverBelowItsBase() throws {
        let policy = try SluiceConfiguration.Queue.retryPolicy(base: .seconds(1), max: .seconds(1), jitter: 0)
        #expect(policy == .exponential(base: .seconds(1), max: .seconds(1), jitter: 0))
        #expect { try SluiceConfiguration.Queue.retryPolicy(base: .seconds(2), max: .seconds(1), jitter: 0) } throws: {
            ($0 as? ConfigurationError)?.key == "queue.retry.max"
        }
    }

    @Test func webhookScheduleIsOneOrMoreDurations() throws {
        #expect(try SluiceConfiguration.Webhooks.schedule(parsing: ["0s", "5s", "5m", "2h"]) == [.zero, .seconds(5), .seconds(300), .seconds(7200)])
        #expect { try SluiceConfiguration.Webhooks.schedule(parsing: []) } throws: {
            ($0 as? ConfigurationError)?.key == "webhooks.schedule"
        }
        #expect { try SluiceConfiguration.Webhooks.schedule(parsing: ["5s", nil]) } throws: {
            ($0 as? ConfigurationError)?.key == "webhooks.schedule[1]"
        }
        #expect { try SluiceConfiguration.Webhooks.schedule(parsing: ["soon"]) } throws: {
            ($0 as? ConfigurationError)?.key == "webhooks.schedule[0]"
        }
    }

    @Test func aProvidersKindNamesItsAPIOrIsExternal() throws {
        let configuration = try SluiceConfiguration.load(yaml: """
            providers:
              a: { kind: anthropic, base_url: "https://api.anthropic.com" }
              mine: { kind: external }
            """)
        #expect(configuration.providers["a"]?.api == .anthropic)
        #expect(configuration.providers["mine"]?.kind == SluiceConfiguration.Provider.externalKind)
        #expect(configuration.providers["mine"]?.api == nil)
    }
}
