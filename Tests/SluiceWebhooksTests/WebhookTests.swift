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
        for text in ["8.8.8.8", "172.32.0.1", "192.169.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "100.128.0.1"] {
            #expect(AddressGuard.forbiddenRange(IPAddress(text)!) == nil, "\(text) is public")
        }
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
