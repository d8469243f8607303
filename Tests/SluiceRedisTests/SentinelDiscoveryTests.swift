import Foundation
import SluiceProcess
import SluiceRedis
import SluiceTestSupport
import Testing

/// `redis+sentinel://` URLs against a real sentinel: the client connects to the primary the
/// sentinel names (with the data nodes' password), and says plainly, without the password, when
/// no sentinel answers or none knows the master.
@Suite struct SentinelDiscoveryTests {
    @Test func connectsToThePrimaryTheSentinelNames() async throws {
        try await withRedis(listen: .loopback(port: nil), extraArguments: ["--requirepass", "data-pw-41"]) { server, direct in
            guard case .tcp(_, let primaryPort) = server.clientConfiguration.endpoint else { Issue.record("not TCP"); return }
            let directory = server.directory + "-sentinel"
            let sentinel = try await SentinelProcess.start(directory: directory, primaryPort: primaryPort, authPass: "data-pw-41")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            do {
                let client = try await RedisClient.connect(url: "redis+sentinel://:data-pw-41@127.0.0.1:\(sentinel.port)/mymaster")
                defer { client.close() }
                try await client.send("SET", "sluice:through-sentinel", "yes")
                #expect(try await direct.send("GET", "sluice:through-sentinel").string == "yes")
                let info = try await client.send("INFO", "server").string ?? ""
                #expect(info.contains("tcp_port:\(primaryPort)\r"))
                #expect(!client.configuration.description.contains("data-pw-41"))

                // A master name the sentinel does not know.
                await #expect {
                    _ = try await RedisClient.connect(url: "redis+sentinel://:data-pw-41@127.0.0.1:\(sentinel.port)/othermaster")
                } throws: { error in
                    guard case RedisError.connectionFailed(let why) = error else { return false }
                    return why.contains("no sentinel named a primary for 'othermaster'") && !why.contains("data-pw-41")
                }
            } catch {
                await sentinel.stop()
                throw error
            }
            await sentinel.stop()
        }
    }

    @Test func noSentinelAnsweringFailsFastNamingNoPassword() async throws {
        let port = try RedisServerProcess.freeLoopbackPort()
        let started = ContinuousClock.now
        await #expect {
            _ = try await RedisClient.connect(url: "redis+sentinel://sluice:pw-secret-77@127.0.0.1:\(port)/mymaster")
        } throws: { error in
            guard case RedisError.connectionFailed(let why) = error else { return false }
            return why.contains("no sentinel named a primary for 'mymaster'") && why.contains("127.0.0.1:\(port)") && !why.contains("pw-secret-77")
        }
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}
