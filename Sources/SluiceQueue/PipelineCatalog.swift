import Foundation
import SluiceCore
import SluiceRedis

/// Where a pipeline's definition is found by name: the configuration's (`pipelines:`, shared by
/// every tenant), then the tenant's stored ones (`POST /v1/pipelines`).
///
/// Stored pipelines live in Redis, one hash per tenant (`sluice:pipelines:<tenant>`: name ->
/// the definition's JSON), bounded: at most `maxPerTenant` pipelines a tenant, each at most
/// `Pipeline.maxDefinitionBytes`. A configuration pipeline's name cannot be stored (the routes
/// answer 409). Reads are not cached: a replaced definition is what the next run gets, and a
/// run already started keeps the definition it snapshotted.
public struct PipelineCatalog: Sendable {
    public let redis: RedisClient
    /// The configuration's pipelines, by name.
    public let configured: [String: Pipeline]
    /// The most pipelines one tenant may store.
    public let maxPerTenant: Int

    public static let defaultMaxPerTenant = 1000

    public init(redis: RedisClient, configured: [String: Pipeline], maxPerTenant: Int = PipelineCatalog.defaultMaxPerTenant) {
        self.redis = redis
        self.configured = configured
        self.maxPerTenant = max(1, maxPerTenant)
    }

    /// The tenant's pipelines hash.
    public static func key(tenant: String) -> String { KeyLayout.root + "pipelines:" + tenant }

    private static let putScript: RedisScript = {
        do {
            return try RedisScript.load("pipeline-put", bundle: Bundle.module)
        } catch {
            // The script ships inside the package; without it the build itself is broken.
            fatalError("SluiceQueue's pipeline script is missing from its bundle: \(error)")
        }
    }()

    /// The pipeline `name` as `tenant` sees it: the configuration's, else the tenant's stored
    /// one; nil when neither has it.
    public func pipeline(named name: String, tenant: String) async throws -> Pipeline? {
        if let pipeline = configured[name] { return pipeline }
        return try await stored(named: name, tenant: tenant)
    }

    /// The tenant's stored pipeline `name`; nil when it has none of that name. A stored
    /// definition that no longer parses (written by a newer version, say) reads as nil.
    public func stored(named name: String, tenant: String) async throws -> Pipeline? {
        let reply = try await redis.send("HGET", Self.key(tenant: tenant), name)
        guard let bytes = reply.bytes else { return nil }
        return try? Pipeline(json: bytes)
    }

    /// The names of the tenant's stored pipelines, sorted.
    public func storedNames(tenant: String) async throws -> [String] {
        let reply = try await redis.send("HKEYS", Self.key(tenant: tenant))
        return (reply.array ?? []).compactMap(\.string).sorted()
    }

    /// The tenant's stored pipelines named `names` (those that exist), in that order.
    public func stored(named names: [String], tenant: String) async throws -> [Pipeline] {
        guard !names.isEmpty else { return [] }
        let reply = try await redis.send(RedisCommand("HMGET", [Self.key(tenant: tenant) as any RedisArgument] + names.map { $0 as any RedisArgument }))
        return (reply.array ?? []).compactMap { $0.bytes.flatMap { try? Pipeline(json: $0) } }
    }

    /// What a store or a replace did.
    public enum PutOutcome: String, Sendable {
        case created, replaced
        /// Create: the tenant already has a pipeline of that name.
        case exists
        /// Replace: the tenant has no pipeline of that name.
        case missing
        /// Create: the tenant already has `maxPerTenant` pipelines.
        case full
    }

    /// Stores `pipeline` for `tenant`: a create (`replace` false) or a replace, atomically.
    public func put(_ pipeline: Pipeline, tenant: String, replace: Bool) async throws -> PutOutcome {
        let reply = try await redis.run(
            Self.putScript, keys: [Self.key(tenant: tenant)],
            arguments: [replace ? "replace" : "create", pipeline.name, pipeline.jsonBytes, String(maxPerTenant)])
        guard let text = reply.string, let outcome = PutOutcome(rawValue: text) else {
            throw RedisError.unexpectedReply("pipeline-put answered \(reply)")
        }
        return outcome
    }

    /// Deletes the tenant's stored pipeline `name`; whether it existed.
    public func delete(named name: String, tenant: String) async throws -> Bool {
        try await redis.send("HDEL", Self.key(tenant: tenant), name).int == 1
    }
}
