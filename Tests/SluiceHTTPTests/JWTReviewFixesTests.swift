import Foundation
import AsyncHTTPClient
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JWTKit
import Logging
import NIOCore
import SluiceCore
@testable import SluiceHTTP
import Synchronization
import Testing

/// The security review's findings on access tokens and the JWKS fetch (issue 18 §1), each checked
/// against the behaviour it fixed: tokens on a live loopback API over a real redis-server, and
/// JWKS documents from a small HTTP server on loopback.
extension JWTAuthTests {
    /// A token whose `aud` is one string (not a list).
    struct StringAudienceClaims: JWTPayload {
        var iss = JWTAuthTests.issuer
        var aud: String
        var exp: Double = Date().timeIntervalSince1970 + 600
        var org_id = "acme"
        var scope = "sluice:submit sluice:read"
        var jti = UUID().uuidString
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// Good claims and 300 more.
    struct PaddedClaims: JWTPayload {
        var claims = Claims()
        init() {}
        init(from decoder: any Decoder) throws { claims = try Claims(from: decoder) }
        func encode(to encoder: any Encoder) throws {
            try claims.encode(to: encoder)
            var container = encoder.container(keyedBy: TokenClaims.Name.self)
            for index in 0..<300 { try container.encode(index, forKey: TokenClaims.Name(stringValue: "x\(index)")) }
        }
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    @Test func aReadOnlyTokenMayNotSeeItsKeysWebhookSecretAndATokenWithNoScopeIsRefused() async throws {
        try await withJWTAPI(jwks: { $0.jwks($0.rsaJWK) }) { api in
            let path = "/v1/keys/\(api.acmeKeyPrefix)/webhook-secret"
            var reader = Claims()
            reader.scope = "sluice:read"
            let readerToken = try await api.keys.token(reader)
            let refused = try await api.request(.get, path, token: readerToken)
            #expect(refused.status == .forbidden)
            #expect((refused.body["error"] as? [String: Any])?["type"] as? String == "permission")
            #expect(!refused.text.contains("whsec_"))
            #expect(try await api.request(.post, path + "/rotate", token: readerToken, json: "{}").status == .forbidden)

            // A token with submit (acting as the same key) may, as the key itself may.
            let submitter = try await api.request(.get, path, token: try await api.keys.token())
            #expect(submitter.status == .ok)
            #expect((submitter.body["secret"] as? String)?.hasPrefix("whsec_") == true)

            // Scopes that map to nothing: refused, naming why.
            var nothing = Claims()
            nothing.scope = "openid profile"
            #expect(try await api.refused(nothing).contains("no scope"))
        }
    }

    @Test func aStringAudienceIsOneValueAndMoreThan256ClaimsAreRefused() async throws {
        try await withJWTAPI(jwks: { $0.jwks($0.rsaJWK) }) { api in
            // "sluice other" is one audience, not "sluice" and "other".
            let spaced = try await api.keys.signers.sign(StringAudienceClaims(aud: "sluice other"), kid: "rsa-1")
            #expect(try await api.refusal(spaced).contains("wrong audience"))
            let exact = try await api.keys.signers.sign(StringAudienceClaims(aud: "sluice"), kid: "rsa-1")
            #expect(try await api.request(.post, "/v1/jobs", token: exact, json: Self.job).status == .accepted)

            let padded = try await api.keys.signers.sign(PaddedClaims(), kid: "rsa-1")
            #expect(try await api.refusal(padded).contains("too many claims"))
        }
    }

    @Test func theHeaderAlgMustBeTheAlgTheKeyStates() async throws {
        try await withJWTAPI(jwks: { $0.jwks($0.rsaJWK, $0.ecJWK) }) { api in
            // An ES256 token naming the RSA key (whose JWK states RS256).
            let forger = JWTKeyCollection()
            await forger.add(ecdsa: ES256PrivateKey(), kid: "rsa-1")
            let token = try await forger.sign(Claims(), kid: "rsa-1")
            #expect(try await api.refusal(token).contains("not the alg the issuer's JWKS states"))
            #expect(try await api.submit() == .accepted)
        }
    }

    @Test func keysOutsideTheIssuersAlgorithmsAreNotLoaded() async throws {
        let keys = try await Keys.make()
        let document = Array(keys.jwks(keys.rsaJWK, keys.ecJWK, keys.edJWK).utf8)
        #expect(try await JWKSCache.keys(from: document, algorithms: [.es256]).kids == ["ec-2"])
        #expect(try await JWKSCache.keys(from: document, algorithms: [.rs256, .edDSA]).kids == ["rsa-1", "ed-3"])
        // An RSA key stating PS256 (not an algorithm Sluice accepts) is skipped.
        let ps256 = keys.rsaJWK.replacingOccurrences(of: #""alg": "RS256""#, with: #""alg": "PS256""#)
        #expect(try await JWKSCache.keys(from: Array(keys.jwks(ps256, keys.ecJWK).utf8)).kids == ["ec-2"])
        #expect(try await JWKSCache.keys(from: document).algorithms == ["rsa-1": "RS256"])
    }

    @Test func theJWKSURLIsLoggedWithoutUserinfoOrQuery() {
        let shown = LoggableURL.shown("https://user:pa55@idp.test:8443/jwks?token=s3cret#frag")
        #expect(shown == "https://idp.test:8443/jwks")
    }

    @Test func jwksURLsAreHTTPSExceptOnLoopbackAndAdminIsNeverADefaultScope() throws {
        func load(_ url: String) throws -> SluiceConfiguration {
            try SluiceConfiguration.load(
                yaml: """
                    auth:
                      jwt:
                        - issuer: https://idp.test/
                          audiences: sluice
                          jwks_url: \(url)
                          key: sluice_abcd2345
                    """)
        }
        for url in ["http://idp.test/jwks", "http://10.0.0.1/jwks", "http://128.0.0.1/jwks", "ftp://idp.test/jwks"] {
            #expect(throws: ConfigurationError.self, "\(url)") { try load(url) }
        }
        do {
            _ = try load("http://idp.test/jwks")
        } catch let error as ConfigurationError { #expect(error.problem.contains("https")) }
        for url in ["https://idp.test/jwks", "http://127.0.0.1:8080/jwks", "http://127.3.2.1/jwks", "http://localhost/jwks", "http://[::1]:9/jwks"] {
            #expect(throws: Never.self, "\(url)") { try load(url) }
        }
        let scopes = try load("https://idp.test/jwks").jwtIssuers.first?.scopes
        #expect(scopes == ["submit": .submit, "read": .read])
    }

    @Test func aMistakeEveryRequestHitsIsLoggedOncePerInterval() {
        let log = OncePer<String>(.seconds(60))
        let start = ContinuousClock.now
        #expect(log.due("issuer key", now: start))
        #expect(!log.due("issuer key", now: start + .seconds(1)))
        #expect(log.due("issuer other-key", now: start + .seconds(1)))
        #expect(log.due("issuer key", now: start + .seconds(61)))
    }

    /// A JWKS server on loopback: `/jwks` the document, `/moved` a redirect to it, `/slow` the
    /// document's first byte and then one more byte a second while `trickle` holds.
    func withJWKSServer(_ document: String, _ body: @escaping @Sendable (_ base: String) async throws -> Void) async throws {
        let router = Router()
        router.get("jwks") { _, _ in Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: document))) }
        router.get("moved") { _, _ in Response(status: .found, headers: [.location: "/jwks"]) }
        router.get("slow") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody { writer in
                    try await writer.write(ByteBuffer(string: "{"))
                    for _ in 0..<120 {
                        try await Task.sleep(for: .seconds(1))
                        try await writer.write(ByteBuffer(string: " "))
                    }
                    try await writer.finish(nil)
                })
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in try await body("http://127.0.0.1:\(client.port!)") }
    }

    @Test func aTricklingJWKSServerHoldsNoTokenPastTheDeadlineAndARedirectIsNotFollowed() async throws {
        let keys = try await Keys.make()
        try await withJWKSServer(keys.jwks(keys.rsaJWK)) { base in
            var slow = JWTIssuer(issuer: Self.issuer, audiences: ["sluice"], keySource: .url(base + "/slow"))
            slow.minRefetch = .milliseconds(100)
            let cache = JWKSCache(issuer: slow, fetchTimeout: .seconds(1), logger: Logger(label: "test"))
            // The body would take 2 minutes: the fetch gives up at its 1 s deadline (30 s: a loaded machine).
            let start = ContinuousClock.now
            #expect(await cache.keys(for: "rsa-1") == nil)
            #expect(ContinuousClock.now - start < .seconds(30))

            let moved = JWKSCache(issuer: JWTIssuer(issuer: Self.issuer, audiences: ["sluice"], keySource: .url(base + "/moved")), logger: Logger(label: "test"))
            #expect(await moved.keys(for: "rsa-1") == nil)
            #expect(await moved.hasKeys == false)
        }
    }

    /// A server that answers nothing for 2 minutes: the deadline answers although the request,
    /// cancelled, does not stop at once (this client has no read timeout).
    @Test func aSilentJWKSServerHoldsNoTokenPastTheDeadline() async throws {
        let released = Atomic<Bool>(false)
        let router = Router()
        router.get("silent") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody { writer in
                    for _ in 0..<1200 where !released.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(100)) }
                    try await writer.finish(nil)
                })
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: .init(redirectConfiguration: .disallow))
        try await app.test(.live) { server in
            let issuer = JWTIssuer(issuer: Self.issuer, audiences: ["sluice"], keySource: .url("http://127.0.0.1:\(server.port!)/silent"))
            let cache = JWKSCache(issuer: issuer, client: client, fetchTimeout: .seconds(1), logger: Logger(label: "test"))
            let start = ContinuousClock.now
            #expect(await cache.keys(for: "rsa-1") == nil)
            #expect(ContinuousClock.now - start < .seconds(30))
            released.store(true, ordering: .relaxed)
        }
        try await client.shutdown()
    }

    @Test func aKnownKidIsAnsweredAtOnceWhileADueRefreshRunsInTheBackground() async throws {
        let keys = try await Keys.make()
        let document = Mutex(keys.jwks(keys.rsaJWK))
        let slow = Atomic<Bool>(false)
        let released = Atomic<Bool>(false)
        let router = Router()
        router.get("jwks") { _, _ in
            let text = document.withLock { $0 }
            guard slow.load(ordering: .relaxed) else {
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
            }
            // Now the server hangs for 2 minutes before it answers (until the test releases it).
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody { writer in
                    for _ in 0..<1200 where !released.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(100)) }
                    try await writer.write(ByteBuffer(string: text))
                    try await writer.finish(nil)
                })
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            var issuer = JWTIssuer(issuer: Self.issuer, audiences: ["sluice"], keySource: .url("http://127.0.0.1:\(client.port!)/jwks"))
            issuer.refresh = .seconds(1)
            issuer.minRefetch = .seconds(3600)
            let cache = JWKSCache(issuer: issuer, fetchTimeout: .seconds(60), logger: Logger(label: "test"))
            #expect(await cache.keys(for: "rsa-1")?.kids == ["rsa-1"])
            slow.store(true, ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(1500))  // past the 1 s refresh
            // Due: the refresh starts in the background; the keys in force answer without waiting
            // for it (it would take 60 s to give up).
            let start = ContinuousClock.now
            #expect(await cache.keys(for: "rsa-1")?.kids == ["rsa-1"])
            #expect(await cache.keys(for: "rsa-1")?.kids == ["rsa-1"])
            #expect(ContinuousClock.now - start < .seconds(20))
            released.store(true, ordering: .relaxed)
        }
    }
}
