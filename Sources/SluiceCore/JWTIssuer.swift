import Foundation

/// One identity provider whose OAuth 2.0 access tokens (JWTs) Sluice accepts besides its API
/// keys: `auth.jwt` in sluice.yaml, a list of these.
///
/// A verified token acts as an existing API key (`key`, or `keys[tenant]`): that key's limits,
/// budget, webhook secret, usage and tenant apply, so per-key behaviour never mixes tenants. The
/// token's scopes (mapped through `scopes`) are narrowed to the key's: a token never gets more
/// than the key it acts as.
public struct JWTIssuer: Sendable, Hashable {
    /// The signature algorithms Sluice may accept. `none` and every HMAC algorithm (HS256, …) are
    /// never among them: a symmetric secret, or a public key misused as one, could forge tokens.
    public enum Algorithm: String, Sendable, Hashable, CaseIterable, Comparable {
        case rs256 = "RS256"
        case es256 = "ES256"
        case edDSA = "EdDSA"

        public static func < (lhs: Algorithm, rhs: Algorithm) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// Where the issuer's public keys (a JWKS document) come from.
    public enum KeySource: Sendable, Hashable {
        /// Fetched over HTTP(S), cached, refetched on `refresh` and on an unknown `kid`.
        case url(String)
        /// Read from a file (reread on `refresh`).
        case file(String)
    }

    /// The `iss` a token must carry, exactly.
    public var issuer: String
    /// A token's `aud` must name at least one of these.
    public var audiences: [String]
    public var keySource: KeySource
    public var algorithms: Set<Algorithm> = Set(Algorithm.allCases)
    /// Clock skew allowed on `exp` and `nbf` (0 to 5 minutes).
    public var leeway: Duration = .seconds(30)
    /// How often the keys are fetched again when in use (`jwks_refresh`, 1 s to 1 day).
    public var refresh: Duration = .seconds(600)
    /// The least time between two fetches caused by an unknown `kid` (`jwks_min_refetch`, 100 ms
    /// to 1 hour): a stream of tokens with made-up kids cannot make Sluice hammer the IdP.
    public var minRefetch: Duration = .seconds(30)
    /// The claim naming the token's tenant (`org_id`, …); nil: the tenant is the key's.
    public var tenantClaim: String?
    /// The claim holding the token's scopes: a space-separated string or an array of strings.
    public var scopeClaim = "scope"
    /// The IdP's scope names → Sluice's scopes; by default `submit` and `read` map to themselves.
    /// `admin` is granted only by an explicit mapping: an IdP scope that happens to be named
    /// "admin" is no Sluice admin.
    public var scopes: [String: Scope] = ["submit": .submit, "read": .read]
    /// The API key (by prefix) each tenant's tokens act as.
    public var tenantKeys: [String: String] = [:]
    /// The API key (by prefix) tokens act as when their tenant is not in `tenantKeys`.
    public var key: String?
    /// The longest a verified token is remembered (never past its `exp`; 0 to 1 hour).
    public var tokenCache: Duration = .seconds(300)

    public init(issuer: String, audiences: [String], keySource: KeySource) {
        self.issuer = issuer
        self.audiences = audiences
        self.keySource = keySource
    }

    /// The key prefix a token of `tenant` acts as; nil when none is configured for it.
    public func keyPrefix(forTenant tenant: String?) -> String? {
        if let tenant, let prefix = tenantKeys[tenant] { return prefix }
        return key
    }

    /// Reads `auth:` (`{jwt: [issuer, …]}`); names the first setting that is wrong.
    public static func readAuth(_ value: Any) throws(ConfigurationError) -> [JWTIssuer] {
        guard let auth = value as? [String: Any] else { throw ConfigurationError(key: "auth", problem: "must be a mapping") }
        if let unknown = auth.keys.filter({ $0 != "jwt" }).sorted().first {
            throw ConfigurationError(key: "auth.\(unknown)", problem: "is not a known setting (auth has jwt)")
        }
        guard let listed = auth["jwt"], !(listed is NSNull) else { return [] }
        guard let list = listed as? [Any] else { throw ConfigurationError(key: "auth.jwt", problem: "must be a list of issuers") }
        guard list.count <= 100 else { throw ConfigurationError(key: "auth.jwt", problem: "may list at most 100 issuers") }
        var issuers: [JWTIssuer] = []
        for (index, entry) in list.enumerated() {
            let issuer = try read(entry, path: "auth.jwt[\(index)]")
            if issuers.contains(where: { $0.issuer == issuer.issuer }) {
                throw ConfigurationError(key: "auth.jwt[\(index)].issuer", problem: "is listed twice")
            }
            issuers.append(issuer)
        }
        return issuers
    }

    private static let known: Set<String> = [
        "issuer", "audiences", "jwks_url", "jwks_file", "algorithms", "leeway", "jwks_refresh", "jwks_min_refetch", "tenant_claim",
        "scope_claim", "scopes", "keys", "key", "token_cache",
    ]

    static func read(_ value: Any, path: String) throws(ConfigurationError) -> JWTIssuer {
        guard let map = value as? [String: Any] else { throw ConfigurationError(key: path, problem: "must be a mapping") }
        if let unknown = map.keys.filter({ !known.contains($0) }).sorted().first {
            throw ConfigurationError(
                key: "\(path).\(unknown)", problem: "is not a known setting (\(known.sorted().joined(separator: ", ")))")
        }
        func text(_ key: String) throws(ConfigurationError) -> String? {
            guard let value = map[key], !(value is NSNull) else { return nil }
            guard let text = value as? String, !text.isEmpty, text.utf8.count <= 2048 else {
                throw ConfigurationError(key: "\(path).\(key)", problem: "must be a non-empty string")
            }
            return text
        }
        func texts(_ key: String) throws(ConfigurationError) -> [String]? {
            guard let value = map[key], !(value is NSNull) else { return nil }
            if let one = value as? String, !one.isEmpty { return [one] }
            guard let list = value as? [Any], !list.isEmpty, list.count <= 100,
                case let strings = list.compactMap({ $0 as? String }), strings.count == list.count, !strings.contains("")
            else { throw ConfigurationError(key: "\(path).\(key)", problem: "must be a string or a list of 1-100 strings") }
            return strings
        }
        func duration(_ key: String, _ range: ClosedRange<Duration>, _ words: String) throws(ConfigurationError) -> Duration? {
            guard let value = map[key], !(value is NSNull) else { return nil }
            let text = (value as? String) ?? (value as? Int).map(String.init) ?? ""
            guard let duration = Bounded.duration(text, in: range) else {
                throw ConfigurationError(key: "\(path).\(key)", problem: "must be a duration from \(words)")
            }
            return duration
        }

        guard let name = try text("issuer") else { throw ConfigurationError(key: "\(path).issuer", problem: "is required: the iss of the tokens") }
        guard let audiences = try texts("audiences") else {
            throw ConfigurationError(key: "\(path).audiences", problem: "is required: the aud values a token may carry (one must match)")
        }
        let source: KeySource
        switch (try text("jwks_url"), try text("jwks_file")) {
        case (let url?, nil):
            guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), ["http", "https"].contains(scheme),
                let host = parsed.host
            else {
                throw ConfigurationError(key: "\(path).jwks_url", problem: "must be an https URL")
            }
            // Plain http could be read or changed on the way: the keys would be an attacker's.
            guard scheme == "https" || isLoopback(host) else {
                throw ConfigurationError(
                    key: "\(path).jwks_url", problem: "must be an https URL (http only to a loopback host: 127.0.0.1, ::1, localhost)")
            }
            source = .url(url)
        case (nil, let file?): source = .file(file)
        case (nil, nil): throw ConfigurationError(key: "\(path).jwks_url", problem: "or jwks_file is required: where the issuer's public keys are")
        case (_?, _?): throw ConfigurationError(key: "\(path).jwks_file", problem: "cannot be set with jwks_url: give one")
        }
        var issuer = JWTIssuer(issuer: name, audiences: audiences, keySource: source)
        if let names = try texts("algorithms") {
            var algorithms = Set<Algorithm>()
            for name in names {
                guard let algorithm = Algorithm(rawValue: name) else {
                    let why =
                        name.lowercased() == "none" || name.uppercased().hasPrefix("HS")
                        ? "is never accepted (an unsigned or HMAC token could be forged)" : "is not supported"
                    throw ConfigurationError(key: "\(path).algorithms", problem: "'\(name.prefix(40))' \(why); the algorithms are RS256, ES256, EdDSA")
                }
                algorithms.insert(algorithm)
            }
            issuer.algorithms = algorithms
        }
        issuer.leeway = try duration("leeway", .zero ... .seconds(300), "0s to 5m") ?? issuer.leeway
        issuer.refresh = try duration("jwks_refresh", .seconds(1) ... .seconds(86_400), "1s to 1d") ?? issuer.refresh
        issuer.minRefetch = try duration("jwks_min_refetch", .milliseconds(100) ... .seconds(3600), "100ms to 1h") ?? issuer.minRefetch
        issuer.tokenCache = try duration("token_cache", .zero ... .seconds(3600), "0s to 1h") ?? issuer.tokenCache
        issuer.tenantClaim = try text("tenant_claim")
        issuer.scopeClaim = try text("scope_claim") ?? issuer.scopeClaim
        if let value = map["scopes"], !(value is NSNull) {
            guard let mapping = value as? [String: Any], !mapping.isEmpty else {
                throw ConfigurationError(key: "\(path).scopes", problem: "must map the IdP's scope names to submit, read or admin")
            }
            var scopes: [String: Scope] = [:]
            for (name, target) in mapping {
                guard let target = target as? String, let scope = Scope(rawValue: target) else {
                    throw ConfigurationError(key: "\(path).scopes.\(name)", problem: "must be submit, read or admin")
                }
                scopes[name] = scope
            }
            issuer.scopes = scopes
        }
        func prefix(_ value: Any, _ key: String) throws(ConfigurationError) -> String {
            guard let prefix = value as? String, isKeyPrefix(prefix) else {
                throw ConfigurationError(key: "\(path).\(key)", problem: "must be an API key's prefix (sluice_ and 8 characters, as sluice keys list shows)")
            }
            return prefix
        }
        if let value = map["key"], !(value is NSNull) { issuer.key = try prefix(value, "key") }
        if let value = map["keys"], !(value is NSNull) {
            guard let mapping = value as? [String: Any], !mapping.isEmpty else {
                throw ConfigurationError(key: "\(path).keys", problem: "must map tenants to API key prefixes")
            }
            guard issuer.tenantClaim != nil else {
                throw ConfigurationError(key: "\(path).keys", problem: "needs tenant_claim: the claim that names a token's tenant")
            }
            for (tenant, value) in mapping { issuer.tenantKeys[tenant] = try prefix(value, "keys.\(tenant)") }
        }
        guard issuer.key != nil || !issuer.tenantKeys.isEmpty else {
            throw ConfigurationError(
                key: "\(path).key", problem: "or keys is required: the API key whose limits, budget and webhook secret the tokens use")
        }
        return issuer
    }

    /// 127.0.0.0/8, ::1 or localhost.
    static func isLoopback(_ host: String) -> Bool {
        let host = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if host == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// `sluice_` and 8 letters or digits: the public part of an API key.
    static func isKeyPrefix(_ text: String) -> Bool {
        let utf8 = Array(text.utf8)
        return utf8.count == 15 && text.hasPrefix("sluice_")
            && utf8.dropFirst(7).allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }
}
