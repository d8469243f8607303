import Crypto
import Foundation
import JWTKit
import Logging
import SluiceCore
import Synchronization

/// What a verified access token says: who issued it, the tenant, the scopes it was granted
/// (mapped to Sluice's), and the API key it acts as.
struct JWTIdentity: Sendable, Hashable {
    var issuer: String
    var tenant: String?
    var scopes: Set<Scope>
    var keyPrefix: String
}

/// Why a token was refused: each case is one check, and its message names it for the client
/// (a 401) without echoing the token or any key.
enum JWTRejection: Error, Sendable, Hashable {
    case malformed
    case wrongIssuer
    case algorithmNotAllowed(String)
    case algorithmNotTheKeys(String)
    case tooManyClaims
    case noScope(String)
    case kidMissing
    case unknownKID(keysLoaded: Bool)
    case badSignature
    case claimMissing(String)
    case invalidTime(String)
    case expired
    case notYetValid
    case wrongAudience
    case noKeyForTenant

    var message: String {
        switch self {
        case .malformed: "the bearer token is not a well-formed JWT"
        case .wrongIssuer: "wrong issuer: the token's iss is not an issuer auth.jwt accepts"
        case .algorithmNotAllowed(let alg): "algorithm not allowed: '\(alg)' is not among the issuer's algorithms (none and HS* never are)"
        case .algorithmNotTheKeys(let alg): "algorithm not allowed: '\(alg)' is not the alg the issuer's JWKS states for the token's kid"
        case .tooManyClaims: "too many claims: a token may carry at most \(TokenClaims.maxClaims)"
        case .noScope(let claim): "no scope: none of the token's '\(claim)' values maps to a Sluice scope (auth.jwt scopes)"
        case .kidMissing: "claim missing: the token's header has no kid"
        case .unknownKID(true): "unknown kid: the token's signing key is not among the issuer's published keys"
        case .unknownKID(false): "unknown kid: the issuer's keys (JWKS) could not be loaded; the server's log says why"
        case .badSignature: "bad signature: the token is not signed by the issuer's key"
        case .claimMissing(let claim): "claim missing: the token has no '\(claim)'"
        case .invalidTime(let claim): "the token's '\(claim)' is not a valid time (seconds since 1970)"
        case .expired: "expired: the token's exp has passed"
        case .notYetValid: "not yet valid: the token's nbf is in the future"
        case .wrongAudience: "wrong audience: the token's aud names none of the audiences auth.jwt accepts"
        case .noKeyForTenant: "the token's tenant has no Sluice API key in auth.jwt (keys or key)"
        }
    }
}

/// Verifies OAuth 2.0 access tokens (JWTs) of the configured issuers (`auth.jwt`) with jwt-kit.
///
/// The checks, in order: the token's shape and size (16 KiB at most), its `iss` among the
/// issuers, its header's `alg` among the issuer's algorithms (never `none` or HMAC), its `kid`
/// among the issuer's keys (refetched once when unknown), the signature (jwt-kit), then `exp`,
/// `nbf` and `iat` (through `Bounded`, with the issuer's leeway) and `aud`. A token that passes
/// is remembered by its SHA-256 until its `exp` (at most the issuer's `token_cache`), so a busy
/// client pays the signature check once.
final class JWTVerifier: Sendable {
    static let maxTokenBytes = 16 << 10
    static let maxCached = 10_000
    /// Times a token may carry: 1970 to the end of year 9999.
    static let timeRange = 0...253_402_300_799

    private let issuers: [String: (settings: JWTIssuer, keys: JWKSCache)]
    private let cache = Mutex<[Data: (identity: JWTIdentity, until: ContinuousClock.Instant)]>([:])
    /// The wall clock, in seconds since 1970 (a test may move it).
    private let now: @Sendable () -> Double

    init(issuers: [JWTIssuer], logger: Logger, now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        var byName: [String: (JWTIssuer, JWKSCache)] = [:]
        for issuer in issuers { byName[issuer.issuer] = (issuer, JWKSCache(issuer: issuer, logger: logger)) }
        self.issuers = byName
        self.now = now
    }

    /// Whether `presented` should be read as a JWT: three dot-separated parts, and not an API key.
    static func looksLikeJWT(_ presented: String) -> Bool {
        !presented.hasPrefix("sluice_") && presented.utf8.lazy.filter { $0 == UInt8(ascii: ".") }.count == 2
    }

    /// The identity `token` proves, or the check it failed.
    func identity(for token: String) async throws(JWTRejection) -> JWTIdentity {
        let bytes = Array(token.utf8)
        guard bytes.count <= Self.maxTokenBytes else { throw .malformed }
        let digest = Data(SHA256.hash(data: bytes))
        let cached = cache.withLock { cache -> JWTIdentity? in
            guard let entry = cache[digest] else { return nil }
            if entry.until < .now {
                cache[digest] = nil
                return nil
            }
            return entry.identity
        }
        if let cached { return cached }
        let (identity, lifetime) = try await verify(bytes)
        if lifetime > .zero {
            cache.withLock { cache in
                if cache.count >= Self.maxCached { cache.removeAll() }
                cache[digest] = (identity, .now + lifetime)
            }
        }
        return identity
    }

    private func verify(_ token: [UInt8]) async throws(JWTRejection) -> (JWTIdentity, Duration) {
        // Unverified first: which issuer, which key, which algorithm. Nothing from here is
        // trusted until the signature is checked with the issuer's key.
        let unverified = try Self.unverified(token)
        guard !unverified.claims.tooMany else { throw .tooManyClaims }
        guard case .string(let iss)? = unverified.claims.values["iss"] else { throw .claimMissing("iss") }
        guard let (settings, jwks) = issuers[iss] else { throw .wrongIssuer }
        guard let alg = unverified.alg else { throw .algorithmNotAllowed("(none given)") }
        guard let algorithm = JWTIssuer.Algorithm(rawValue: alg), settings.algorithms.contains(algorithm) else {
            throw .algorithmNotAllowed(String(alg.prefix(20)))
        }
        guard let kid = unverified.kid else { throw .kidMissing }
        guard let keys = await jwks.keys(for: kid) else { throw .unknownKID(keysLoaded: await jwks.hasKeys) }
        if let stated = keys.algorithms[kid], stated != alg { throw .algorithmNotTheKeys(String(alg.prefix(20))) }

        let claims: TokenClaims
        do {
            claims = try await keys.collection.verify(token, as: TokenClaims.self)
        } catch let error as JWTError where error.errorType == .malformedToken {
            throw .malformed
        } catch {
            // A signature that does not verify, or does not fit the key (an RS256 header on an
            // EC key): either way the issuer did not sign this token with this key.
            throw .badSignature
        }
        // Verified: the claims are the issuer's.
        let clock = now()
        let nowSeconds = Bounded.int(clock.rounded(.down), in: Self.timeRange) ?? 0
        let exp = try Self.checkTimes(claims, now: nowSeconds, leeway: settings.leeway)
        guard let audience = claims.values["aud"]?.values else { throw .claimMissing("aud") }
        guard audience.contains(where: settings.audiences.contains) else { throw .wrongAudience }

        var tenant: String?
        if let claim = settings.tenantClaim {
            guard case .string(let value)? = claims.values[claim], !value.isEmpty else { throw .claimMissing(claim) }
            tenant = value
        }
        guard let granted = claims.values[settings.scopeClaim]?.strings else { throw .claimMissing(settings.scopeClaim) }
        let scopes = Set(granted.compactMap { settings.scopes[$0] })
        guard !scopes.isEmpty else { throw .noScope(settings.scopeClaim) }
        guard let prefix = settings.keyPrefix(forTenant: tenant) else { throw .noKeyForTenant }

        // Remembered until exp (never past it), and never longer than the issuer allows.
        // exp and now are both within timeRange (Bounded above), the difference clamped to it.
        let untilExp = Duration.seconds(Bounded.clamp(Bounded.add(exp, -nowSeconds), to: 0...Self.timeRange.upperBound))
        let lifetime = min(untilExp, settings.tokenCache)
        return (JWTIdentity(issuer: iss, tenant: tenant, scopes: scopes, keyPrefix: prefix), lifetime)
    }
}

extension JWTVerifier {
    /// The header's `alg` and `kid` and the claims, read (by jwt-kit's parser) before anything
    /// is verified: only to choose the issuer, the key and the algorithm.
    static func unverified(_ token: [UInt8]) throws(JWTRejection) -> (alg: String?, kid: String?, claims: TokenClaims) {
        do {
            let parsed = try DefaultJWTParser().parse(token, as: TokenClaims.self)
            return (parsed.header.alg, parsed.header.kid, parsed.payload)
        } catch {
            throw .malformed
        }
    }

    /// Checks `exp` (required), `nbf` and `iat` against `now` (seconds since 1970) with `leeway`;
    /// returns `exp`. Every time goes through `Bounded`: an absurd one (`1e300`, negative, not a
    /// number) is refused, never trapped on.
    static func checkTimes(_ claims: TokenClaims, now: Int, leeway: Duration) throws(JWTRejection) -> Int {
        let leeway = Int(Bounded.milliseconds(leeway) / 1000)
        func time(_ name: String) throws(JWTRejection) -> Int? {
            guard let value = claims.values[name] else { return nil }
            guard case .number(let number) = value, let seconds = Bounded.int(number.rounded(.down), in: timeRange) else {
                throw .invalidTime(name)
            }
            return seconds
        }
        guard let exp = try time("exp") else { throw .claimMissing("exp") }
        guard Bounded.add(exp, leeway) >= now else { throw .expired }
        if let nbf = try time("nbf"), nbf > Bounded.add(now, leeway) { throw .notYetValid }
        _ = try time("iat")
        return exp
    }
}

/// A token's payload as claims by name: strings, lists of strings and numbers are kept, any
/// other value (objects, booleans) is read as `.other` without being looked into.
struct TokenClaims: JWTPayload {
    enum Claim: Sendable, Hashable, Codable {
        case string(String)
        case strings([String])
        case number(Double)
        case other

        /// A string as a space-separated list (`scope: "a b"`), or a list of strings.
        var strings: [String]? {
            switch self {
            case .string(let text): text.split(separator: " ").map(String.init)
            case .strings(let list): list
            case .number, .other: nil
            }
        }

        /// A string as one value (`aud: "a b"` is the one audience "a b"), or a list of strings.
        var values: [String]? {
            switch self {
            case .string(let text): [text]
            case .strings(let list): list
            case .number, .other: nil
            }
        }

        init(from decoder: any Decoder) throws {
            let value = try decoder.singleValueContainer()
            if let text = try? value.decode(String.self) {
                self = .string(text)
            } else if let list = try? value.decode([String].self) {
                self = .strings(list)
            } else if let number = try? value.decode(Double.self) {
                self = .number(number)
            } else {
                self = .other
            }
        }

        func encode(to encoder: any Encoder) throws {
            var value = encoder.singleValueContainer()
            switch self {
            case .string(let text): try value.encode(text)
            case .strings(let list): try value.encode(list)
            case .number(let number): try value.encode(number)
            case .other: try value.encodeNil()
            }
        }
    }

    struct Name: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// The most claims a token may carry.
    static let maxClaims = 256

    var values: [String: Claim]
    /// The payload has more than `maxClaims` claims: none is read, and the token is refused
    /// (reading some would drop others, `nbf` or `iat` among them, in no set order).
    var tooMany = false

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Name.self)
        var values: [String: Claim] = [:]
        if container.allKeys.count > Self.maxClaims {
            tooMany = true
        } else {
            for name in container.allKeys { values[name.stringValue] = try container.decode(Claim.self, forKey: name) }
        }
        self.values = values
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Name.self)
        for (name, value) in values { try container.encode(value, forKey: Name(stringValue: name)) }
    }

    /// The claims are checked by `JWTVerifier` once the signature is, with the issuer's leeway.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
