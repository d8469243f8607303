import Foundation
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
        #expect(throws: RedisError.invalidURL("scheme 'http' is not redis://, unix:// or redis+sentinel://")) {
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

    @Test func parsesSentinelURLsWithSeveralSentinels() throws {
        let configuration = try RedisConfiguration(url: "redis+sentinel://sluice:s%40cret@10.0.0.1:26379,sentinel-b,[::1]:26380/mymaster/2")
        #expect(configuration.endpoint == .sentinel(
            nodes: [.init(host: "10.0.0.1", port: 26379), .init(host: "sentinel-b", port: 26379), .init(host: "::1", port: 26380)],
            master: "mymaster"))
        #expect(configuration.username == "sluice")
        #expect(configuration.password == "s@cret")
        #expect(configuration.database == 2)
        #expect(configuration.description == "redis+sentinel://sluice:***@10.0.0.1:26379,sentinel-b:26379,[::1]:26380/mymaster/2")
        let plain = try RedisConfiguration(url: "redis+sentinel://127.0.0.1:5000/main?db=1")
        #expect(plain.endpoint == .sentinel(nodes: [.init(host: "127.0.0.1", port: 5000)], master: "main"))
        #expect(plain.database == 1 && plain.password == nil && plain.username == nil)
    }

    @Test func rejectsSentinelURLsWithoutASentinelOrAMaster() {
        #expect(throws: RedisError.invalidURL("no master name in the URL (redis+sentinel://host:port/<master>)")) {
            try RedisConfiguration(url: "redis+sentinel://127.0.0.1:26379")
        }
        #expect(throws: RedisError.invalidURL("no sentinel in the URL")) {
            try RedisConfiguration(url: "redis+sentinel:///mymaster")
        }
        #expect(throws: RedisError.invalidURL("sentinel port 70000 out of range")) {
            try RedisConfiguration(url: "redis+sentinel://h:70000/mymaster")
        }
        #expect(throws: RedisError.invalidURL("db 'x' is not a number")) {
            try RedisConfiguration(url: "redis+sentinel://h:1/mymaster/x")
        }
    }

    /// A password file (a mounted secret): its first line, read when the URL has no password;
    /// never in the description or in an error.
    @Test func readsThePasswordFromAFileAndNeverShowsIt() throws {
        let path = NSTemporaryDirectory() + "sluice-redis-password-\(UUID().uuidString)"
        try "hunter2-file\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let tcp = try RedisConfiguration(url: "redis://sluice@cache:6379/0?password_file=\(path)")
        #expect(tcp.username == "sluice" && tcp.password == "hunter2-file")
        #expect(!tcp.description.contains("hunter2"))
        let sentinel = try RedisConfiguration(url: "redis+sentinel://sluice@s1:26379/mymaster?password_file=\(path)")
        #expect(sentinel.password == "hunter2-file")
        #expect(!sentinel.description.contains("hunter2") && sentinel.description.contains("sluice:***@"))
        // The URL's own password wins over the file.
        #expect(try RedisConfiguration(url: "redis://u:inline@cache?password_file=\(path)").password == "inline")
        #expect(throws: RedisError.invalidURL("cannot read the password_file /nonexistent/pw")) {
            try RedisConfiguration(url: "redis://cache?password_file=/nonexistent/pw")
        }
    }

    @Test func scriptSHA1MatchesKnownDigests() {
        #expect(RedisScript(name: "empty", source: "").sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(RedisScript(name: "abc", source: "abc").sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(
            RedisScript(name: "long", source: "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").sha1
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
    }
}
