import SluiceTestSupport
import SluiceWebhooks
import Testing

/// An endpoint that answered 410 is disabled for the key whose deliveries it refused: another
/// tenant's replay to the same URL cannot enable it again for them.
@Suite struct DisabledEndpointTests {
    @Test func aDisabledEndpointIsPerKey() async throws {
        try await withRedis { _, redis in
            let store = WebhookStore(redis: redis)
            let url = "https://hooks.example/gone"
            try await store.disable(url: url, key: 1)
            #expect(try await store.isDisabled(url: url, key: 1))
            #expect(try await !store.isDisabled(url: url, key: 2))
            try await store.enable(url: url, key: 2)  // tenant B's replay
            #expect(try await store.isDisabled(url: url, key: 1), "another key's replay enabled it")
            try await store.enable(url: url, key: 1)  // the owner's replay
            #expect(try await !store.isDisabled(url: url, key: 1))
        }
    }
}
