import Crypto
import Foundation
import SluiceWebhooks
import Testing

@Suite struct AddressGuardTests {
    @Test func privateLoopbackLinkLocalAndMetadataAddressesAreRefused() {
        for text in [
            "127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
            "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00::1", "fc00::1", "ff02::1", "::ffff:127.0.0.1",
            "::ffff:169.254.169.254", "64:ff9b::10.0.0.1", "fd00:ec2::254",
        ] {
            let address = IPAddress(text)!
            #expect(AddressGuard.forbiddenRange(address) != nil, "\(text) must be refused")
        }
        for text in ["8.8.8.8", "172.32.0.1", "192.169.0.1", "2606:4700::1111", "100.128.0.1", "64:ff9b::8.8.8.8", "2001:4860::8888"] {
            #expect(AddressGuard.forbiddenRange(IPAddress(text)!) == nil, "\(text) is public")
        }
    }

    /// IPv6 forms that tunnel or translate to IPv4 are refused whatever they embed; the
    /// well-known NAT64 prefix is judged by its IPv4 part.
    @Test func tunnelledAndTranslatedFormsAreRefused() {
        for text in [
            "2002:7f00:1::1", "2002:a9fe:a9fe::", "2002:808:808::1",  // 6to4, private or not
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001::1",  // Teredo
            "64:ff9b:1::a00:1", "64:ff9b:1:ffff::8.8.8.8",  // local-use NAT64
            "::ffff:0:10.0.0.1", "::ffff:0:8.8.8.8",  // IPv4-translated (SIIT)
            "::ffff:127.0.0.1", "::ffff:8.8.8.8",  // IPv4-mapped
            "::10.0.0.1", "::8.8.8.8",  // IPv4-compatible
            "64:ff9b::127.0.0.1", "64:ff9b::192.168.1.1", "64:ff9b::169.254.169.254",  // well-known NAT64 of private
            "192.0.2.1", "198.51.100.7", "203.0.113.9", "192.88.99.1", "100::1",
        ] {
            #expect(AddressGuard.forbiddenRange(IPAddress(text)!) != nil, "\(text) must be refused")
        }
    }

    /// A refusal says the address is not allowed, never which address the name resolved to.
    @Test func aRefusalDoesNotNameTheResolvedAddress() async throws {
        for url in ["http://localhost:8080/hook", "http://[2002:a00:1::1]/x", "http://[64:ff9b:1::a00:1]/", "http://10.1.2.3/"] {
            do {
                _ = try await AddressGuard().check(url)
                Issue.record("\(url) must be refused")
            } catch {
                let text = "\(error)"
                #expect(text.contains("not allowed"), "\(text)")
                for leak in ["127.0.0.1", "::1", "2002:", "64:ff9b", "loopback", "private", "6to4", "NAT64"] where !url.contains(leak) {
                    #expect(!text.contains(leak), "\(text) names \(leak)")
                }
                #expect(!String(reflecting: error).contains("127.0.0.1"))
            }
        }
    }

    /// `allow_cidrs` lets through what it covers, including the IPv6 forms of an allowed IPv4.
    @Test func allowedRangesCoverTheEmbeddedForms() async throws {
        let guard10 = AddressGuard(allowed: [CIDR("10.0.0.0/8")!, CIDR("2002::/16")!])
        for url in ["http://10.1.1.1/", "http://[::ffff:10.1.1.1]/", "http://[64:ff9b::10.1.1.1]/", "http://[2002:a00:1::1]/"] {
            _ = try await guard10.check(url)
        }
        await #expect(throws: AddressGuard.Refusal.self) { try await guard10.check("http://[::ffff:11.1.1.1]/") }
        await #expect(throws: AddressGuard.Refusal.self) { try await guard10.check("http://[64:ff9b:1::a01:101]/") }
        await #expect(throws: AddressGuard.Refusal.self) { try await guard10.check("http://[2001::a01:101]/") }
    }

    @Test func theCheckResolvesNamesAndHonoursAllowedRanges() async throws {
        await #expect(throws: AddressGuard.Refusal.self) { try await AddressGuard().check("http://localhost:8080/hook") }
        await #expect(throws: AddressGuard.Refusal.self) { try await AddressGuard().check("ftp://example.com/") }
        await #expect(throws: AddressGuard.Refusal.self) { try await AddressGuard().check("http://[::1]/x") }
        let loopback = AddressGuard(allowed: [CIDR("127.0.0.0/8")!, CIDR("::1/128")!])
        let target = try await loopback.check("http://localhost:8080/hook")
        #expect(target.host == "localhost" && ["127.0.0.1", "::1"].contains(target.address))
        #expect(CIDR("10.0.0.0/8")!.contains(IPAddress("10.200.1.1")!) && !CIDR("10.0.0.0/8")!.contains(IPAddress("11.0.0.1")!))
        #expect(CIDR("2001:db8::/32")!.contains(IPAddress("2001:db8::5")!) && CIDR("nonsense") == nil && CIDR("10.0.0.0/33") == nil)
    }
}

@Suite struct WebhookSignatureTests {
    /// The Standard Webhooks reference example (from the specification's test vectors).
    @Test func signaturesMatchTheStandardAndRotationSendsBoth() throws {
        let secret = try #require(WebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        let body = Array(#"{"test": 2432232314}"#.utf8)
        let signature = WebhookSignature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: 1_614_265_330, body: body, secrets: [secret])
        #expect(signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        let second = WebhookSecret.generate()
        let both = WebhookSignature.sign(id: "msg_x", timestamp: 1, body: body, secrets: [second, secret])
        #expect(both.split(separator: " ").count == 2 && both.split(separator: " ").allSatisfy { $0.hasPrefix("v1,") })
        #expect(WebhookSecret("whsec_short") == nil && WebhookSecret("nope") == nil)
        #expect("\(secret)" == "whsec_…", "a secret never prints itself")
    }
}
