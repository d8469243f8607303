import Testing
@testable import SluiceRedis

@Suite struct RedisConfigurationTests {
    @Test func parsesTcpURLWithCredentialsAndDatabase() throws {
        let configuration = try RedisConfiguration(url: "redis://alice:p%40ss@cache.internal:6380/3")
        #expect(configuration.endpoint == .tcp(host: "cache.internal", port: 6380))
        #expect(configuration.username == "alice")
        #expect(configuration.password == "p@ss")
        #expect(configuration.database == 3)
    }

    @Test func defaultsPortAndDatabase() throws {
        let configuration = try RedisConfiguration(url: "redis://127.0.0.1")
        #expect(configuration.endpoint == .tcp(host: "127.0.0.1", port: 6379))
        #expect(configuration.database == 0)
        #expect(configuration.password == nil)
    }

    @Test func parsesUnixSocketURL() throws {
        let configuration = try RedisConfiguration(url: "unix:///var/run/redis.sock?db=2&password=pw")
        #expect(configuration.endpoint == .unix(path: "/var/run/redis.sock"))
        #expect(configuration.database == 2)
        #expect(configuration.password == "pw")
    }

    @Test func rejectsBadURLsWithAReason() {
        #expect(throws: RedisError.invalidURL("scheme 'http' is not redis:// or unix://")) {
            try RedisConfiguration(url: "http://localhost")
        }
        #expect(throws: RedisError.invalidURL("database 'abc' is not a number")) {
            try RedisConfiguration(url: "redis://localhost/abc")
        }
    }

    @Test func descriptionNeverShowsThePassword() throws {
        let configuration = try RedisConfiguration(url: "redis://:topsecret@localhost:6379/1")
        #expect(!configuration.description.contains("topsecret"))
        #expect(!RedisConfiguration.redact("redis://:topsecret@localhost").contains("topsecret"))
        let command = RedisCommand("AUTH", "topsecret")
        #expect(!command.description.contains("topsecret"))
    }

    @Test func scriptSHA1MatchesKnownDigests() {
        #expect(RedisScript(name: "empty", source: "").sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(RedisScript(name: "abc", source: "abc").sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(
            RedisScript(name: "long", source: "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").sha1
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
    }
}
