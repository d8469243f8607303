import SluiceCore
import Testing

/// `server.trusted_proxies`: which entries parse, the error naming bad ones, and how the client's
/// address is read from `X-Forwarded-For` (only from a trusted peer, the right-most untrusted hop).
@Suite struct TrustedProxiesTests {
    @Test func absentTrustsNobodyAndLogsNothing() throws {
        let server = try SluiceConfiguration.load(yaml: "server: { port: 1 }\n").server
        #expect(server.trustedProxies.isEmpty)
        #expect(!server.accessLog)
    }

    @Test func addressesAndCIDRsOfBothFamiliesAreRead() throws {
        let server = try SluiceConfiguration.load(
            yaml: "server: { trusted_proxies: [10.0.0.0/8, 192.168.1.7, 'fd00::/8', '::1', '2001:db8::/32'], access_log: true }\n"
        ).server
        #expect(server.trustedProxies.description == "10.0.0.0/8, 192.168.1.7, fd00::/8, ::1, 2001:db8::/32")
        #expect(server.accessLog)
    }

    @Test func badEntriesAreAnErrorNamingThem() {
        for entry in ["10.0.0.0/33", "10.0.0", "fd00::/129", "example.com", "10.0.0.0/-1", "10.0.0.0/", "1.2.3.4/8x", "'::1/0099'", "42"] {
            do {
                _ = try SluiceConfiguration.load(yaml: "server: { trusted_proxies: [127.0.0.1, \(entry)] }\n")
                Issue.record("\(entry) was accepted")
            } catch {
                #expect(error.key == "server.trusted_proxies")
                #expect(error.problem.contains(entry.replacingOccurrences(of: "'", with: "")), "\(error.problem)")
                #expect(!error.problem.contains("'127.0.0.1'"))
            }
        }
        #expect(throws: ConfigurationError.self) { try SluiceConfiguration.load(yaml: "server: { trusted_proxies: 10.0.0.1 }\n") }
    }

    /// A range that would trust almost any peer (0.0.0.0/0, ::/0, …) is refused at load, naming it
    /// and why; the widest ranges kept (a /8, a /16, the private fd00::/8) still load.
    @Test func aRangeThatTrustsAlmostEveryPeerIsRefused() throws {
        for entry in ["0.0.0.0/0", "'::/0'", "10.0.0.0/7", "128.0.0.0/1", "'2000::/3'", "'2001::/15'"] {
            do {
                _ = try SluiceConfiguration.load(yaml: "server: { trusted_proxies: [127.0.0.1, \(entry)] }\n")
                Issue.record("\(entry) was accepted")
            } catch {
                #expect(error.key == "server.trusted_proxies")
                #expect(error.problem.contains("too wide"), "\(error.problem)")
            }
        }
        let kept = try TrustedProxies(parsing: ["10.0.0.0/8", "2001:db8::/16", "fd00::/8", "fc00::/7"])
        #expect(kept.description == "10.0.0.0/8, 2001:db8::/16, fd00::/8, fc00::/7")
    }

    let proxies = try! TrustedProxies(parsing: ["10.0.0.0/8", "fd00::/8", "127.0.0.1"])

    @Test func aDirectClientsForwardedForIsIgnored() {
        #expect(proxies.clientAddress(peer: "203.0.113.9", forwardedFor: "198.51.100.1") == "203.0.113.9")
        #expect(TrustedProxies.none.clientAddress(peer: "127.0.0.1", forwardedFor: "198.51.100.1") == "127.0.0.1")
    }

    @Test func theRightMostUntrustedHopIsTheClient() {
        // A client's own (spoofed) entries stay to the left of what its proxy appended.
        #expect(proxies.clientAddress(peer: "10.1.2.3", forwardedFor: "1.1.1.1, 203.0.113.9") == "203.0.113.9")
        #expect(proxies.clientAddress(peer: "10.1.2.3", forwardedFor: "1.1.1.1, 203.0.113.9, 10.9.9.9") == "203.0.113.9")
        #expect(proxies.clientAddress(peer: "fd00::5", forwardedFor: "2001:db8::7") == "2001:db8::7")
        // Every hop trusted: the left-most.
        #expect(proxies.clientAddress(peer: "10.1.2.3", forwardedFor: "10.0.0.1,10.0.0.2") == "10.0.0.1")
        // No header: the proxy itself.
        #expect(proxies.clientAddress(peer: "10.1.2.3", forwardedFor: nil) == "10.1.2.3")
    }

    @Test func formsAreNormalised() {
        // A dual-stack socket's IPv4 peer, ports and brackets.
        #expect(proxies.clientAddress(peer: "::ffff:10.0.0.1", forwardedFor: "203.0.113.9:5555") == "203.0.113.9")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: " [2001:DB8::7]:443 ") == "2001:db8::7")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: "::FFFF:198.51.100.2") == "198.51.100.2")
    }

    @Test func garbageStopsAtTheLastVouchedHop() {
        #expect(proxies.clientAddress(peer: "10.1.2.3", forwardedFor: "203.0.113.9, unknown") == "10.1.2.3")
        #expect(proxies.clientAddress(peer: "10.1.2.3", forwardedFor: "1.2.3.4\u{0}, 10.0.0.8") == "10.0.0.8")
        #expect(proxies.clientAddress(peer: "10.1.2.3", forwardedFor: ",,,") == "10.1.2.3")
        #expect(proxies.clientAddress(peer: "10.1.2.3", forwardedFor: "") == "10.1.2.3")
        // A long chain of trusted hops is read only so far (maxHops).
        let chain = Array(repeating: "10.0.0.1", count: 10_000).joined(separator: ",") + ",10.0.0.2"
        #expect(proxies.clientAddress(peer: "10.1.2.3", forwardedFor: "203.0.113.9," + chain) == "10.0.0.1")
        #expect(proxies.clientAddress(peer: nil, forwardedFor: "203.0.113.9") == nil)
    }
}
