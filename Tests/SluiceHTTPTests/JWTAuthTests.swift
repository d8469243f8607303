import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JWTKit
import Logging
import NIOCore
import SluiceCore
@testable import SluiceHTTP
import SluiceQueue
import SluiceStore
import SluiceTestSupport
import Synchronization
import Testing

/// OAuth 2.0 access tokens (issue 18 §1): tokens minted here with jwt-kit's signers, against a
/// JWKS served by a small HTTP server on loopback, to the API on a live loopback server over a
/// real redis-server and SQLite.
@Suite struct JWTAuthTests {
    /// The claims the tests put in tokens (`nil` fields are left out).
    struct Claims: JWTPayload {
        var iss = JWTAuthTests.issuer
        var aud: [String] = ["sluice"]
        var exp: Double = Date().timeIntervalSince1970 + 600
        var nbf: Double?
        var iat: Double? = Date().timeIntervalSince1970
        var org_id: String? = "acme"
        var scope: String? = "sluice:submit sluice:read"
        /// Makes each token distinct (a token seen before is answered from the verifier's cache).
        var jti = UUID().uuidString
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static let issuer = "https://idp.test/realms/acme"
    static let job = #"{"lane": "demo", "request": {"x": 1}}"#

    /// A 2048-bit RSA key made for these tests only.
    static let rsaPEM = """
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDHQReblnfySpP1
h93+An6DNAt272lWcBzKBSHwFglvi4oe0wiPKoI/MtCP5chA79bCPcl1FLGF2XZ3
PjdDVMg2XZlbNhqSR02K2E7ubGplLnDoQdUgwYciov0BPCOzsqNUQx58QQymsA8C
pAMrXCJniK4rxQq/Q18GQ4mfRDJPwomf/UGXDWHWD/zD3LBz6tf4qr2HyhYuS8zV
dQ0uh1dp+zw9jUCUDsozS+8xdnyDTqol2WsazOQiuOPhVMPvGQjcrdZKQUpwZSCv
L//T9AalpGmENAbd2qFD+OhP27qKpJNiJMlD+iFDNDygWgjZLajkk234FEffPoOd
ik85sX2fAgMBAAECggEAAX+22r/GBTeUZ1tvSxLfusLwdyOT6keLn+Vr/O9dgM5O
6q5xuQn70tfiA8MZv4tOVUW7tzrBnx0kq/720XXYz7fiiHIevwz0Q2AfL+H25u3z
gXvFS6rJBnStbI30QszMN70NhKfEnZhjdIShVXkq9RZtIP0peIjcNSLa7SzJKBpu
HI2x9lUIxvTM8BBeo/HQ2xElivKcqJiVNcnOVShtd/Yn+jCPCarnfdVtgdSTAAoc
wwkq9SxL3ORzkRoy9TKBk0cACR7G8LK/MFpXcIlFWwL+tgPQL8GBZMPKy/TYeNn7
taSqadVOlCEI03m+cB8uq3JWenl+HhlSRFy2JNbm8QKBgQD+ZjrwcfE+FRPXXK/X
Isatoqb5sQ8fye8rf4jQ02YksKCljvla8rJNiz3FcxQlSlbbTRTPJP4XRNhpaiOr
gO2tQ2NnQsHfqhz/GHXvZ+u3MKV7jUbAH2Ps27OV58Y0rZjiTiI3utFK6X7yIYiv
oR/AjVuM6Rdi4HlkJas6vIFjpwKBgQDIggm1WY7XbRUgR9v/D3ny1cD7WgZ2Bj+m
2tj1wQfyptrhRvb1nDLc24FDkrklkr5Frr5hn/8S3sCQgbLhs4K2lVtoN14nBcuQ
qSUkN7yNn2TZtToGDxxGLokN/la6d403w1QQf3BIXQZSBQM+SWMtE7WU0sSBgerW
71CJjtG1SQKBgQCTrosWnD68mIXNJtxZWrHViK/AEb5C6Poz2TR2bdJFCFgp5Abz
eiJyC5wPbI/MWgx0AJpM6h+rKGctQtV0MUNIqu8guctMaTeuCugj08MttErMn6Xr
0A01KhFlu4f/eqte7JbGnWf0QfpU24y60CFbqXP1KDdQShmOPqPZVCcUzwKBgH6x
O/Usy4bvVAP7o9R8MO/xhGjNr3tv41RIwAI4oA8AwxjJQE5dDf5jbEAIO5i0KinZ
ik4hTIjd2wr0CNV4GcXIheNJ6OH7VW7okaFa3ncWGiE905X0gkcOLGd9J8vWspJj
h4CNJaNztASrSitXL6VR6NBKhQPX1U1OFbN1XKiRAoGAVfpdVwHG2VH5G/Tx4XJq
9/BeZZry2lWji6LHFkp+kwKyHmS8fI9OzUUdYnyRmhnoh3CFzLBrbR4Ra9CORpl1
KHE/sDWe5zabwg9c+7sgnbvB1InL7Q7SuFhdqpWOX/wtW7aTi7Yw1Q8UqvKmAcLd
fU3pRJiflkjtXsNRjteFeB0=
-----END PRIVATE KEY-----
"""

    /// The keys the tests sign with: RSA `rsa-1` (RS256), EC `ec-2` (ES256) and Ed25519 `ed-3`
    /// (EdDSA), and the JWKS
    /// documents that publish them.
    struct Keys: Sendable {
        let signers: JWTKeyCollection
        let rsaPublicPEM: String
        let rsaJWK: String
        let ecJWK: String
        let edJWK: String

        static func make() async throws -> Keys {
            let rsa = try Insecure.RSA.PrivateKey(pem: JWTAuthTests.rsaPEM)
            let (modulus, exponent) = try rsa.publicKey.getKeyPrimitives()
            let ec = ES256PrivateKey()
            let parameters = try #require(ec.parameters)
            let signers = JWTKeyCollection()
            await signers.add(rsa: rsa, digestAlgorithm: .sha256, kid: "rsa-1")
            await signers.add(ecdsa: ec, kid: "ec-2")
            let ed = try EdDSA.PrivateKey()
            await signers.add(eddsa: ed, kid: "ed-3")
            return Keys(
                signers: signers, rsaPublicPEM: rsa.publicKey.pemRepresentation,
                rsaJWK: #"{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": "\#(base64URL(modulus))", "e": "\#(base64URL(exponent))"}"#,
                ecJWK: #"{"kty": "EC", "crv": "P-256", "kid": "ec-2", "use": "sig", "x": "\#(parameters.x)", "y": "\#(parameters.y)"}"#,
                edJWK: #"{"kty": "OKP", "crv": "Ed25519", "kid": "ed-3", "use": "sig", "x": "\#(base64URL(ed.publicKey.rawRepresentation))"}"#)
        }

        func jwks(_ keys: String...) -> String { #"{"keys": [\#(keys.joined(separator: ", "))]}"# }

        func token(_ claims: Claims = Claims(), kid: JWKIdentifier = "rsa-1") async throws -> String {
            try await signers.sign(claims, kid: kid)
        }
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// What the JWKS server answers, and how often it was asked.
    final class JWKSServer: Sendable {
        let document: Mutex<String>
        let fetches = Atomic<Int>(0)
        init(_ document: String) { self.document = Mutex(document) }
        func serve(_ text: String) { document.withLock { $0 = text } }
    }

    struct Fixture: Sendable {
        let client: any TestClientProtocol
        let jwks: JWKSServer
        let keys: Keys
        let acmeKeyPrefix: String
        let globexKeyPrefix: String
        let store: APIKeyStore

        func request(_ method: HTTPRequest.Method, _ uri: String, token: String, json: String? = nil) async throws -> (
            status: HTTPResponse.Status, body: [String: Any], text: String
        ) {
            var fields: HTTPFields = [.authorization: "Bearer \(token)"]
            if json != nil { fields[.contentType] = "application/json" }
            let response = try await client.execute(uri: uri, method: method, headers: fields, body: json.map { ByteBuffer(string: $0) })
            let text = String(buffer: response.body)
            let body = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            return (response.status, body, text)
        }

        /// The status of a submit with a token minted from `claims`.
        func submit(_ claims: Claims = Claims(), kid: JWKIdentifier = "rsa-1") async throws -> HTTPResponse.Status {
            try await request(.post, "/v1/jobs", token: try await keys.token(claims, kid: kid), json: JWTAuthTests.job).status
        }

        /// The 401's message for a token minted from `claims`.
        func refused(_ claims: Claims = Claims(), kid: JWKIdentifier = "rsa-1") async throws -> String {
            try await refusal(try await keys.token(claims, kid: kid))
        }

        /// The 401's message for `token`, checked to be an authentication error that does not echo it.
        func refusal(_ token: String) async throws -> String {
            let answer = try await request(.post, "/v1/jobs", token: token, json: JWTAuthTests.job)
            #expect(answer.status == .unauthorized)
            let error = answer.body["error"] as? [String: Any]
            #expect(error?["type"] as? String == "authentication")
            #expect(!answer.text.contains(token))
            // Nor its signature (a real one: "c" of "a.b.c" is in any sentence).
            let signature = token.split(separator: ".", omittingEmptySubsequences: false).last ?? ""
            #expect(signature.count < 16 || !answer.text.contains(signature))
            return error?["message"] as? String ?? ""
        }
    }

    /// The API with `auth.jwt` (one issuer, keys from the JWKS server), tenants acme and globex
    /// each mapped to an API key of their own.
    func withJWTAPI(
        jwks initial: @escaping @Sendable (Keys) -> String, minRefetch: Duration = .milliseconds(100), crossed: Bool = false,
        _ body: @escaping @Sendable (Fixture) async throws -> Void
    ) async throws {
        let keys = try await Keys.make()
        let jwks = JWKSServer(initial(keys))
        let router = Router()
        router.get("jwks") { _, _ -> Response in
            jwks.fetches.add(1, ordering: .relaxed)
            return Response(
                status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: jwks.document.withLock { $0 })))
        }
        let jwksApp = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await jwksApp.test(.live) { jwksClient in
            let jwksURL = "http://127.0.0.1:\(jwksClient.port!)/jwks"
            try await withRedis { _, redis in
                let directory = NSTemporaryDirectory() + "sluice-jwt-" + UUID().uuidString
                defer { try? FileManager.default.removeItem(atPath: directory) }
                let store = APIKeyStore(database: try SluiceDatabase(path: directory + "/sluice.sqlite"))
                let queue = JobQueue(redis: redis)
                let waiter = JobWaiter(queue: queue)
                defer { waiter.close() }
                let acme = try store.create(tenant: "acme", scopes: [.submit, .read]).key
                let globex = try store.create(tenant: "globex", scopes: [.submit, .read]).key
                var issuer = JWTIssuer(issuer: Self.issuer, audiences: ["sluice"], keySource: .url(jwksURL))
                issuer.tenantClaim = "org_id"
                issuer.scopes = ["sluice:submit": .submit, "sluice:read": .read]
                // crossed: a configuration mistake that maps acme to globex's key.
                issuer.tenantKeys = ["acme": crossed ? globex.prefix : acme.prefix, "globex": globex.prefix]
                issuer.minRefetch = minRefetch
                issuer.leeway = .seconds(5)
                var settings = SluiceAPI.Settings()
                settings.providers = ["demo": SluiceConfiguration.Provider(name: "demo", kind: "openai", baseURL: "http://127.0.0.1:9/v1")]
                settings.jwtIssuers = [issuer]
                let api = SluiceAPI.testing(queue: queue, waiter: waiter, keys: store, settings: settings)
                let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
                try await app.test(.live) { client in
                    try await body(
                        Fixture(client: client, jwks: jwks, keys: keys, acmeKeyPrefix: acme.prefix, globexKeyPrefix: globex.prefix, store: store))
                }
            }
        }
    }

    @Test func aValidTokenSubmitsAndReadsAsItsTenantsKeyAndNoOtherTenant() async throws {
        try await withJWTAPI(jwks: { $0.jwks($0.rsaJWK, $0.ecJWK, $0.edJWK) }) { api in
            let token = try await api.keys.token()
            let submitted = try await api.request(.post, "/v1/jobs", token: token, json: Self.job)
            #expect(submitted.status == .accepted)
            let id = try #require(submitted.body["id"] as? String)
            let read = try await api.request(.get, "/v1/jobs/\(id)", token: token)
            #expect(read.status == .ok)

            // ES256 and EdDSA tokens of the same tenant read it too.
            let ecToken = try await api.keys.token(kid: "ec-2")
            #expect(try await api.request(.get, "/v1/jobs/\(id)", token: ecToken).status == .ok)
            let edToken = try await api.keys.token(kid: "ed-3")
            #expect(try await api.request(.get, "/v1/jobs/\(id)", token: edToken).status == .ok)

            // Tenant globex's token acts as globex's key: acme's job is not there for it.
            var globex = Claims()
            globex.org_id = "globex"
            let globexToken = try await api.keys.token(globex)
            #expect(try await api.request(.get, "/v1/jobs/\(id)", token: globexToken).status == .notFound)
            #expect(try await api.request(.post, "/v1/jobs", token: globexToken, json: Self.job).status == .accepted)

            // A read-only token reads, and may not submit.
            var reader = Claims()
            reader.scope = "sluice:read openid"
            let readerToken = try await api.keys.token(reader)
            #expect(try await api.request(.get, "/v1/jobs/\(id)", token: readerToken).status == .ok)
            let refused = try await api.request(.post, "/v1/jobs", token: readerToken, json: Self.job)
            #expect(refused.status == .forbidden)
            #expect((refused.body["error"] as? [String: Any])?["type"] as? String == "permission")

            // A tenant with no key in auth.jwt is refused.
            var stranger = Claims()
            stranger.org_id = "initech"
            #expect(try await api.refused(stranger).contains("tenant"))

            // The keys were fetched once for all of these (no kid was unknown; the refresh is 10 min).
            #expect(api.jwks.fetches.load(ordering: .relaxed) == 1)
        }
    }

    @Test func eachFailedCheckIsA401NamingIt() async throws {
        try await withJWTAPI(jwks: { $0.jwks($0.rsaJWK) }) { api in
            let now = Date().timeIntervalSince1970
            var expired = Claims()
            expired.exp = now - 3600
            #expect(try await api.refused(expired).contains("expired"))

            var early = Claims()
            early.nbf = now + 3600
            #expect(try await api.refused(early).contains("not yet valid"))

            var audience = Claims()
            audience.aud = ["someone-else"]
            #expect(try await api.refused(audience).contains("wrong audience"))

            var issuer = Claims()
            issuer.iss = "https://evil.test/"
            #expect(try await api.refused(issuer).contains("wrong issuer"))

            // ec-2 is not published here: unknown, even after the refetch it causes.
            #expect(try await api.refused(kid: "ec-2").contains("unknown kid"))

            var noTenant = Claims()
            noTenant.org_id = nil
            #expect(try await api.refused(noTenant).contains("claim missing: the token has no 'org_id'"))

            // Absurd times are a 401, not a trap.
            var absurd = Claims()
            absurd.exp = 1e300
            #expect(try await api.refused(absurd).contains("'exp' is not a valid time"))
            absurd = Claims()
            absurd.nbf = -1e300
            #expect(try await api.refused(absurd).contains("'nbf' is not a valid time"))

            // A payload changed after signing.
            let good = try await api.keys.token()
            let parts = good.split(separator: ".").map(String.init)
            var forged = Claims()
            forged.org_id = "globex"
            let forgedPayload = JWTAuthTests.base64URL(try JSONEncoder().encode(forged))
            #expect(try await api.refusal("\(parts[0]).\(forgedPayload).\(parts[2])").contains("bad signature"))

            // alg none, unsigned.
            let noneHeader = JWTAuthTests.base64URL(Data(#"{"alg":"none","typ":"JWT","kid":"rsa-1"}"#.utf8))
            let payload = JWTAuthTests.base64URL(try JSONEncoder().encode(Claims()))
            #expect(try await api.refusal("\(noneHeader).\(payload).").contains("algorithm not allowed"))

            // HS256 with the RSA public key (as the JWKS and PEM publish it) as the HMAC secret.
            let forger = JWTKeyCollection()
            await forger.add(hmac: HMACKey(from: api.keys.rsaPublicPEM), digestAlgorithm: .sha256, kid: "rsa-1")
            let hmacToken = try await forger.sign(Claims(), kid: "rsa-1")
            #expect(try await api.refusal(hmacToken).contains("algorithm not allowed"))

            // Not a JWT at all (three parts of nonsense).
            #expect(try await api.refusal("a.b.c").contains("not a well-formed JWT"))

            // And the good token still passes.
            #expect(try await api.request(.post, "/v1/jobs", token: good, json: Self.job).status == .accepted)
        }
    }

    @Test func rotatedKeysAreFetchedOnAnUnknownKidAndABadDocumentKeepsTheOldKeys() async throws {
        try await withJWTAPI(jwks: { $0.jwks($0.rsaJWK) }) { api in
            #expect(try await api.submit() == .accepted)
            #expect(api.jwks.fetches.load(ordering: .relaxed) == 1)

            // The IdP rotates to ec-2: the first token with the new kid makes Sluice fetch again.
            api.jwks.serve(api.keys.jwks(api.keys.ecJWK))
            try await Task.sleep(for: .milliseconds(300))  // past jwks_min_refetch (100 ms)
            #expect(try await api.submit(kid: "ec-2") == .accepted)
            #expect(api.jwks.fetches.load(ordering: .relaxed) == 2)
            // rsa-1 is gone from the document: a new rsa-1 token is refused.
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await api.refused().contains("unknown kid"))

            // A broken document is not taken: ec-2 still works after a refetch that got garbage.
            api.jwks.serve("<html>maintenance</html>")
            try await Task.sleep(for: .milliseconds(300))
            let fetched = api.jwks.fetches.load(ordering: .relaxed)
            #expect(try await api.refused().contains("unknown kid"))
            #expect(api.jwks.fetches.load(ordering: .relaxed) == fetched + 1)
            #expect(try await api.submit(kid: "ec-2") == .accepted)
        }
    }

    @Test func aTokenMappedToAnotherTenantsKeyOrARevokedKeyIsRefused() async throws {
        try await withJWTAPI(jwks: { $0.jwks($0.rsaJWK) }, crossed: true) { api in
            // acme's tokens are (wrongly) mapped to globex's key: refused, never globex's jobs.
            let crossed = try await api.refused()
            #expect(crossed.contains("not the tenant of the API key"))
            var globex = Claims()
            globex.org_id = "globex"
            let before = try await api.submit(globex)
            #expect(before == .accepted)
            // Revoking the key a tenant maps to locks its tokens out. The store is changed directly
            // (no announcement evicts the token seen above), so the check is on a token not seen
            // before: a new jti. The same claims again could sign to the very same token (the
            // encoder's key order varies from one encoding to the next, and sometimes matches),
            // which this process has cached for 10 s.
            #expect(try api.store.revoke(prefix: api.globexKeyPrefix))
            globex.jti = UUID().uuidString
            let after = try await api.refused(globex)
            #expect(after.contains("missing or revoked"))
        }
    }

    /// A token seen before is answered from the key cache; revoking its key through the API
    /// evicts it at once (the key change reaches the cache), not when the entry lapses.
    @Test func aCachedTokenIsRefusedAtOnceWhenItsKeyIsRevokedThroughTheAPI() async throws {
        try await withJWTAPI(jwks: { $0.jwks($0.rsaJWK) }) { api in
            let token = try await api.keys.token()
            let job = JWTAuthTests.job
            #expect(try await api.request(.post, "/v1/jobs", token: token, json: job).status == .accepted)
            #expect(try await api.request(.post, "/v1/jobs", token: token, json: job).status == .accepted, "the same token again, from the cache")
            let admin = try api.store.create(tenant: "ops", scopes: [.admin]).secret
            #expect(try await api.request(.delete, "/v1/keys/\(api.acmeKeyPrefix)", token: admin).status == .ok)
            #expect(try await api.refusal(token).contains("missing or revoked"))
        }
    }

    @Test func unknownKidsRefetchAtMostOncePerMinimumInterval() async throws {
        try await withJWTAPI(jwks: { $0.jwks($0.rsaJWK) }, minRefetch: .seconds(3600)) { api in
            let first = try await api.submit()
            #expect(first == .accepted)
            for _ in 0..<5 {
                let message = try await api.refused(kid: "ec-2")
                #expect(message.contains("unknown kid"))
            }
            #expect(api.jwks.fetches.load(ordering: .relaxed) == 1)
        }
    }

    /// jwt-kit itself, given only the issuer's RSA key, refuses `alg: none` and an HS256 token
    /// made with the public key as the HMAC secret (Sluice refuses both earlier, by `alg`).
    @Test func jwtKitRefusesNoneAndHMACWithOnlyAsymmetricKeys() async throws {
        let keys = try await Keys.make()
        let loaded = try await JWKSCache.keys(from: Array(keys.jwks(keys.rsaJWK).utf8))
        #expect(loaded.kids == ["rsa-1"])
        let good = try await keys.token()
        _ = try await loaded.collection.verify(good, as: TokenClaims.self)

        let forger = JWTKeyCollection()
        await forger.add(hmac: HMACKey(from: keys.rsaPublicPEM), digestAlgorithm: .sha256, kid: "rsa-1")
        let hmacToken = try await forger.sign(Claims(), kid: "rsa-1")
        await #expect(throws: (any Error).self) { _ = try await loaded.collection.verify(hmacToken, as: TokenClaims.self) }

        let noneHeader = Self.base64URL(Data(#"{"alg":"none","kid":"rsa-1"}"#.utf8))
        let payload = Self.base64URL(try JSONEncoder().encode(Claims()))
        await #expect(throws: (any Error).self) { _ = try await loaded.collection.verify("\(noneHeader).\(payload).", as: TokenClaims.self) }
    }

    /// `jwks_file`: read on first use and again on an unknown kid; a file that turns bad keeps the keys.
    @Test func aJWKSFileIsReadAndABadOneKeepsTheKeys() async throws {
        let keys = try await Keys.make()
        let path = NSTemporaryDirectory() + "sluice-jwks-" + UUID().uuidString + ".json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try keys.jwks(keys.rsaJWK).write(toFile: path, atomically: true, encoding: .utf8)
        var issuer = JWTIssuer(issuer: Self.issuer, audiences: ["sluice"], keySource: .file(path))
        issuer.minRefetch = .milliseconds(100)
        let cache = JWKSCache(issuer: issuer, logger: Logger(label: "test"))
        #expect(await cache.keys(for: "rsa-1")?.kids == ["rsa-1"])
        #expect(await cache.keys(for: "ec-2") == nil)

        try keys.jwks(keys.rsaJWK, keys.ecJWK).write(toFile: path, atomically: true, encoding: .utf8)
        try await Task.sleep(for: .milliseconds(300))
        #expect(await cache.keys(for: "ec-2")?.kids == ["rsa-1", "ec-2"])

        try #"{"keys": "#.write(toFile: path, atomically: true, encoding: .utf8)
        try await Task.sleep(for: .milliseconds(300))
        #expect(await cache.keys(for: "ed-3") == nil)  // refetched: the file is bad now
        #expect(await cache.keys(for: "ec-2")?.kids == ["rsa-1", "ec-2"])
    }

    /// A scope claim is a space-separated string (`scope`) or an array (Okta's `scp`); only
    /// strings, lists of strings and numbers are kept from a payload.
    @Test func scopesReadAsStringOrArray() throws {
        let claims = try JSONDecoder().decode(
            TokenClaims.self, from: Data(#"{"scope": "a  b", "scp": ["c", "d"], "exp": 17, "nested": {"x": [1, {"y": 2}]}, "flag": true}"#.utf8))
        #expect(claims.values["scope"]?.strings == ["a", "b"])
        #expect(claims.values["scp"]?.strings == ["c", "d"])
        #expect(claims.values["exp"] == .number(17))
        #expect(claims.values["nested"] == .other)
        #expect(claims.values["flag"] == .other)
        #expect(claims.values["exp"]?.strings == nil)
    }

    @Test func configurationNamesWhatIsWrong() throws {
        func problem(_ yaml: String) -> String? {
            do {
                _ = try SluiceConfiguration.load(yaml: yaml)
                return nil
            } catch { return "\(error)" }
        }
        let base = """
            auth:
              jwt:
                - issuer: https://idp.test/
                  audiences: sluice
                  jwks_url: https://idp.test/jwks
                  key: sluice_abcd2345
            """
        let loaded = try SluiceConfiguration.load(yaml: base)
        #expect(loaded.jwtIssuers.first?.audiences == ["sluice"])
        #expect(loaded.jwtIssuers.first?.algorithms == [.rs256, .es256, .edDSA])
        // sluice serve and up build the API's settings from the configuration: the issuers go along.
        #expect(SluiceAPI.Settings(loaded).jwtIssuers == loaded.jwtIssuers)
        #expect(problem(base + "\n      algorithms: [RS256, HS256]")?.contains("'HS256' is never accepted") == true)
        #expect(problem(base + "\n      algorithms: [none]")?.contains("'none' is never accepted") == true)
        #expect(problem(base + "\n      algorithms: [PS512]")?.contains("'PS512' is not supported") == true)
        #expect(problem(base + "\n      leeway: 1h")?.contains("leeway") == true)
        #expect(problem(base + "\n      keys: {acme: sluice_abcd2345}")?.contains("needs tenant_claim") == true)
        #expect(problem(base + "\n      jwks_file: /etc/jwks.json")?.contains("jwks_file") == true)
        #expect(problem(base + "\n      scopes: {write: everything}")?.contains("scopes.write") == true)
        #expect(problem(base.replacingOccurrences(of: "key: sluice_abcd2345", with: "leeway: 10s"))?.contains("or keys is required") == true)
        #expect(problem(base + "\n      tenant_clam: org")?.contains("tenant_clam") == true)
    }
}
