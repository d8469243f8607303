import Crypto

/// What a job asks of the response cache: `"cache": {"ttl": "24h"}` (with `"all": true` to cache
/// a request that does not look deterministic), `"cache": true` (the configured TTL) or
/// `"cache": false` (never look up, never store: a cache-busting job).
public struct ResponseCachePolicy: Sendable, Hashable {
    /// How long a stored result serves identical requests.
    public var ttl: Duration
    /// Cache any request, not only deterministic-looking ones (`temperature: 0`).
    public var all: Bool

    /// The TTL when none is named (by the job or the config).
    public static let defaultTTL: Duration = .seconds(24 * 3600)
    /// The longest TTL a job or the config may ask for: 30 days.
    public static let maxTTL: Duration = .seconds(30 * 24 * 3600)

    public init(ttl: Duration = ResponseCachePolicy.defaultTTL, all: Bool = false) {
        self.ttl = ttl
        self.all = all
    }

    /// Why a `cache` value is refused: the message names what was wrong (the field is `cache`
    /// or `cache.<member>`).
    public struct Refusal: Error, Sendable, Hashable {
        public var param: String
        public var message: String
    }

    /// The policy a client's `cache` value asks for, starting from `defaults` (the key's or the
    /// config's): nil for `false` (no caching for this job). Accepts `true`, `false` and an
    /// object with `ttl` (a duration text such as `"24h"`, or seconds, 1 s ... 30 days) and `all`
    /// (a boolean); anything else is refused.
    public static func parse(_ value: JSONValue, defaults: ResponseCachePolicy = ResponseCachePolicy()) throws(Refusal) -> ResponseCachePolicy? {
        switch value {
        case .bool(false): return nil
        case .bool(true): return defaults
        case .object(let object):
            var policy = defaults
            for member in object.members {
                switch member.key {
                case "ttl": policy.ttl = try ttl(member.value)
                case "all": policy.all = try all(member.value)
                default:
                    throw Refusal(param: "cache.\(member.key.prefix(40))", message: "cache takes only ttl and all")
                }
            }
            return policy
        default:
            throw Refusal(param: "cache", message: "cache must be true, false or an object such as {\"ttl\": \"24h\"}")
        }
    }

    /// A `cache.ttl` value: a duration text (`"24h"`) or seconds, 1 s ... 30 days.
    static func ttl(_ value: JSONValue) throws(Refusal) -> Duration {
        let parsed: Duration? =
            switch value {
            case .string(let text): Bounded.duration(text, in: .seconds(1)...maxTTL)
            case .integer, .number: value.doubleValue.flatMap { Bounded.duration(seconds: $0, in: .seconds(1)...maxTTL) }
            default: nil
            }
        guard let parsed else {
            throw Refusal(param: "cache.ttl", message: "cache.ttl must be a duration such as \"24h\" or a number of seconds, from 1 s to 30 days")
        }
        return parsed
    }

    /// A `cache.all` value: a boolean.
    static func all(_ value: JSONValue) throws(Refusal) -> Bool {
        guard case .bool(let all) = value else { throw Refusal(param: "cache.all", message: "cache.all must be true or false") }
        return all
    }
}

/// A key's or a route's cache setting (`cache:` on a route in the config; on a key in the
/// config's `cache.keys` or through `/v1/keys`): `false` turns the cache off for its jobs,
/// `true` or `{"ttl", "all"}` on for every one of them, with the members it names over those of
/// the layer below. The layers, lowest first: the config's `cache:` defaults, the route, the key,
/// the job's own `cache` (which always wins, `false` included).
public struct ResponseCacheDefault: Sendable, Hashable {
    /// On (every job of the key or route is cacheable) or off (`false`: none is, unless it asks).
    public var enabled: Bool
    /// The TTL it sets; nil: the layer below's. Kept in whole milliseconds (as it is stored),
    /// within 1 s ... 30 days.
    public var ttl: Duration? {
        didSet { ttl = ttl.map(Self.normalized) }
    }
    /// Whether any request is cached, not only deterministic-looking ones; nil: the layer below's.
    public var all: Bool?

    static func normalized(_ ttl: Duration) -> Duration {
        .milliseconds(Bounded.milliseconds(Bounded.clamp(ttl, to: .seconds(1)...ResponseCachePolicy.maxTTL)))
    }

    /// `cache: false`.
    public static let off = ResponseCacheDefault(enabled: false)

    public init(enabled: Bool = true, ttl: Duration? = nil, all: Bool? = nil) {
        self.enabled = enabled
        self.ttl = ttl.map(Self.normalized)
        self.all = all
    }

    /// From a `cache` value: `true`, `false` or an object with `ttl` and `all` (as a job's).
    public static func parse(_ value: JSONValue) throws(ResponseCachePolicy.Refusal) -> ResponseCacheDefault {
        switch value {
        case .bool(let on): return ResponseCacheDefault(enabled: on)
        case .object(let object):
            var setting = ResponseCacheDefault()
            for member in object.members {
                switch member.key {
                case "ttl": setting.ttl = try ResponseCachePolicy.ttl(member.value)
                case "all": setting.all = try ResponseCachePolicy.all(member.value)
                default:
                    throw ResponseCachePolicy.Refusal(param: "cache.\(member.key.prefix(40))", message: "cache takes only ttl and all")
                }
            }
            return setting
        default:
            throw ResponseCachePolicy.Refusal(param: "cache", message: "cache must be true, false or an object such as {\"ttl\": \"24h\"}")
        }
    }

    /// As the API shows and the key store keeps it: `false`, or `{"ttl": <seconds>, "all": …}`
    /// with the members it sets (a TTL with a fraction of a second as `"<ms>ms"`).
    public var json: JSONValue {
        guard enabled else { return .bool(false) }
        var object = JSONObject()
        if let ttl {
            // Whole seconds as a number; a TTL with a fraction of a second as milliseconds text
            // (`"1500ms"`), which reads back exactly.
            let millis = Bounded.milliseconds(ttl)
            object["ttl"] = millis % 1000 == 0 ? .integer(millis / 1000) : .string("\(millis)ms")
        }
        if let all { object["all"] = .bool(all) }
        return .object(object)
    }

    /// `json` as text, and back (nil for anything it cannot be: a damaged stored value).
    public var text: String { json.jsonText }
    public init?(text: String) {
        guard let value = try? JSONValue(parsing: text), let setting = try? Self.parse(value) else { return nil }
        self = setting
    }

    /// `policy` with this setting's members over it.
    func applied(to policy: ResponseCachePolicy) -> ResponseCachePolicy {
        var policy = policy
        if let ttl { policy.ttl = ttl }
        if let all { policy.all = all }
        return policy
    }
}

/// The identity of a cacheable request: SHA-256 over the cache scope (the tenant, or a scope the
/// config shares), the lane and the canonical request body (object keys sorted by their UTF-8
/// bytes, no whitespace, numbers in one spelling). Two requests that differ only in key order or
/// whitespace get the same key; a different tenant, lane or any value gets another one.
///
/// Pure and bounded: the body is parsed by `JSONValue`'s bounded parser (depth-limited, so
/// sorting cannot recurse without bound), and a body that is not a JSON object has no key.
public struct ResponseCacheKey: Sendable, Hashable, Codable, CustomStringConvertible {
    /// 64 lowercase hex digits.
    public let digest: String

    public var description: String { digest }

    /// The key of `body` sent to `lane` within `scope`, if the request is cacheable under
    /// `policy`: a JSON object that looks deterministic (`temperature` is 0), or any JSON object
    /// when `policy.all`. Nil otherwise.
    public init?(lane: String, scope: String, body: [UInt8], policy: ResponseCachePolicy) {
        guard let value = try? JSONValue(parsing: body), case .object = value else { return nil }
        guard policy.all || Self.looksDeterministic(value) else { return nil }
        self.init(lane: lane, scope: scope, canonical: Self.canonicalBytes(value))
    }

    /// A key read back from its stored digest: nil unless it is 64 lowercase hex digits.
    public init?(digest: String) {
        guard digest.utf8.count == 64, digest.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            return nil
        }
        self.digest = digest
    }

    /// The key of an already canonical body.
    init(lane: String, scope: String, canonical: [UInt8]) {
        var hasher = SHA256()
        // Lengths first, so no choice of scope and lane can collide with another split.
        for part in [Array(scope.utf8), Array(lane.utf8)] {
            hasher.update(data: Array("\(part.count):".utf8))
            hasher.update(data: part)
        }
        hasher.update(data: canonical)
        let hex = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in hasher.finalize() {
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0F)])
        }
        digest = String(decoding: text, as: UTF8.self)
    }

    /// A request that should give the same answer each time: its `temperature` is 0.
    public static func looksDeterministic(_ body: JSONValue) -> Bool {
        body["temperature"]?.doubleValue == 0
    }

    /// The canonical JSON of `value`: object members sorted by key (UTF-8 byte order), compact.
    public static func canonicalBytes(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        sorted(value).write(to: &out)
        return out
    }

    /// `value` with every object's members in key order. Recursion is bounded by the parser's
    /// depth limit (`JSONScanner.maxDepth`).
    static func sorted(_ value: JSONValue) -> JSONValue {
        switch value {
        case .array(let elements): return .array(elements.map(sorted))
        case .object(let object):
            let members = object.members.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
            return .object(JSONObject(members.map { ($0.key, sorted($0.value)) }))
        default: return value
        }
    }
}

/// The response cache's configuration (`cache:`).
public struct ResponseCacheSettings: Sendable, Hashable {
    /// The cap on the bytes of all stored results; past it the oldest are evicted (0: none).
    public var maxBytes = 256 << 20
    /// What `"cache": true` (and a `cache` object's missing members) mean: `ttl`, `all`.
    public var defaults = ResponseCachePolicy()
    /// Every job is cacheable (with `defaults`) unless it says `"cache": false`; off: only jobs
    /// that ask.
    public var byDefault = false
    /// A scope every tenant shares (`scope: shared`); nil: each tenant its own (the default).
    public var sharedScope: String?

    public init(maxBytes: Int = 256 << 20, defaults: ResponseCachePolicy = ResponseCachePolicy(), byDefault: Bool = false, sharedScope: String? = nil) {
        self.maxBytes = maxBytes
        self.defaults = defaults
        self.byDefault = byDefault
        self.sharedScope = sharedScope
    }

    /// Each route's setting (`routes.<name>.cache`), by route name.
    public var routes: [String: ResponseCacheDefault] = [:]
    /// Each key's setting from the config (`cache.keys.<prefix>`), by key prefix; one set through
    /// `/v1/keys` is the key's own and wins over it.
    public var keys: [String: ResponseCacheDefault] = [:]
    /// The setting of the key a submit comes from (`forKey`); nil: none.
    public var key: ResponseCacheDefault?

    /// These settings for a submit by the key with `prefix`, whose own setting is `own`.
    public func forKey(prefix: String, own: ResponseCacheDefault?) -> ResponseCacheSettings {
        var settings = self
        settings.key = own ?? keys[prefix]
        return settings
    }

    /// The policy a job gets. The layers, lowest first: the config's defaults (on for every job
    /// when `byDefault`), the job's route's setting, its key's setting, and the job's own `cache`
    /// value, which always wins (nil: `false`). A layer that says `false` turns the cache off for
    /// the job unless a higher one turns it on; the members each layer names (`ttl`, `all`) are
    /// taken over the lower ones'.
    public func policy(for value: JSONValue?, route: String? = nil) throws(ResponseCachePolicy.Refusal) -> ResponseCachePolicy? {
        var enabled = byDefault
        var base = defaults
        for layer in [route.flatMap { routes[$0] }, key] {
            guard let layer else { continue }
            enabled = layer.enabled
            base = layer.applied(to: base)
        }
        guard let value else { return enabled ? base : nil }
        return try ResponseCachePolicy.parse(value, defaults: base)
    }

    /// The scope a tenant's requests are keyed in.
    public func scope(tenant: String) -> String { sharedScope.map { "shared:" + $0 } ?? "tenant:" + tenant }
}

/// What a cacheable job carries in its envelope: its cache key and how long its result is kept.
/// Stored as one string, `"<digest> <ttl ms>"`.
public struct ResponseCacheTicket: Sendable, Hashable, Codable {
    public var key: ResponseCacheKey
    public var ttl: Duration

    public init(key: ResponseCacheKey, ttl: Duration) {
        self.key = key
        self.ttl = Bounded.clamp(ttl, to: .seconds(1)...ResponseCachePolicy.maxTTL)
    }

    /// The stored form.
    public var text: String { "\(key.digest) \(Bounded.milliseconds(ttl))" }

    /// Reads the stored form; nil for anything else (a damaged field costs the job its cache).
    public init?(text: String) {
        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, let key = ResponseCacheKey(digest: String(parts[0])),
            let millis = Bounded.int(parts[1], in: 1000...Int(Bounded.milliseconds(ResponseCachePolicy.maxTTL)))
        else { return nil }
        self.init(key: key, ttl: .milliseconds(millis))
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let ticket = ResponseCacheTicket(text: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not a cache ticket"))
        }
        self = ticket
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}
