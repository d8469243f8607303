import Foundation
import SluiceCore
import SluiceRedis

/// A provider's last failed calls, newest first, for `/v1/providers` and the dashboard: a Redis
/// list per provider (`sluice:{p:<provider>}:errors`) of at most `kept` entries, each a small JSON
/// object. Workers write it only when a call fails, in the pipeline that flushes their call
/// statistics once a second (`ProviderStats` in SluiceWorker): a successful call costs nothing.
///
/// An entry is bounded whatever the provider answered: its message is the classified error (the
/// provider's own error text, already masked of key-shaped strings) cut to `maxMessage`
/// characters, with the configured key's value masked too; no header is ever kept.
public enum ProviderErrors {
    /// How many entries a provider's list keeps.
    public static let kept = 20
    /// The most characters of an entry's message.
    public static let maxMessage = 300

    /// One failed call: when, the HTTP status (nil: no answer), its kind (`rate_limited`,
    /// `retryable`, `context_length`, `fatal`), a short message, and the lane's model.
    public struct Entry: Sendable, Hashable, Codable {
        public var at: UnixMillis
        public var status: Int?
        public var kind: String
        public var message: String
        public var model: String?

        /// An entry whose message is cut to `maxMessage` characters, with every occurrence of
        /// `secret` (the provider's API key; nil or short: none) masked.
        public init(at: UnixMillis, status: Int?, kind: String, message: String, model: String?, secret: String? = nil) {
            self.at = at
            self.status = status
            self.kind = String(kind.prefix(32))
            // Cut before masking (a message of any length costs the same), then to its length: a
            // key in the first `maxMessage` characters lies wholly inside the first cut.
            var text = String(message.prefix(4 * ProviderErrors.maxMessage))
            if let secret, secret.count >= 8 { text = text.replacingOccurrences(of: secret, with: "[redacted]") }
            if text.count > ProviderErrors.maxMessage { text = String(text.prefix(ProviderErrors.maxMessage - 1)) + "…" }
            self.message = text
            self.model = model.map { String($0.prefix(200)) }
        }
    }

    public static func key(_ provider: String) -> String { KeyLayout.providerPrefix(provider) + "errors" }

    /// The commands that add `entries` (oldest first) to `provider`'s list and keep its newest `kept`.
    public static func append(_ entries: [Entry], provider: String) -> [RedisCommand] {
        let encoder = JSONEncoder()
        let values: [any RedisArgument] = entries.suffix(kept).compactMap { try? encoder.encode($0) }.map { [UInt8]($0) }
        guard !values.isEmpty else { return [] }
        return [RedisCommand("LPUSH", [key(provider) as any RedisArgument] + values), RedisCommand("LTRIM", key(provider), 0, kept - 1)]
    }

    /// Each of `providers`' last errors (in that order), newest first by their time, in one pipeline; an entry
    /// that does not decode is skipped.
    public static func read(_ providers: [String], redis: RedisClient) async throws -> [[Entry]] {
        guard !providers.isEmpty else { return [] }
        let replies = try await redis.pipeline(providers.map { RedisCommand("LRANGE", key($0), 0, kept - 1) })
        let decoder = JSONDecoder()
        return replies.map { reply in
            // Sorted by time: calls in flight together (and several workers) end and are pushed
            // in another order than they are stamped.
            (reply.array ?? []).compactMap { value -> Entry? in
                guard case .bulkString(let bytes) = value, bytes.count <= 4096 else { return nil }
                return try? decoder.decode(Entry.self, from: Data(bytes))
            }.sorted { $0.at > $1.at }
        }
    }
}
