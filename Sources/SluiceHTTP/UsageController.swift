import Foundation
import Hummingbird
import SluiceCore
import SluiceStore

/// `GET /v1/usage?from=&to=&group_by=model|key|tenant[&tenant=]` (scope read): the usage ledger.
///
/// - `from` and `to` are Unix seconds or ISO 8601 dates (`2026-11-01`) or date-times; `to` is
///   exclusive and defaults to now, `from` to 30 days before `to`. The ledger is kept per hour,
///   so `from` is rounded down to its hour.
/// - A key sees its own tenant's usage; an admin key sees every tenant's, or one with `tenant=`.
/// - Each row: the group (`model`, `key` as its prefix, or `tenant`), requests (finished jobs),
///   succeeded, input and output tokens, `cost_usd` from the configured prices (a job completed
///   through a provider's batch API at the batch price: list price less the provider's
///   `batch_api.discount`), `cached` (of the succeeded, those answered from the response cache:
///   provider calls saved) and `saved_usd` (what those answers cost at list price when they were
///   called), `batched` (jobs completed through a provider batch) and `batch_saved_usd` (the
///   discount they got).
struct UsageController: Sendable {
    let archive: ArchiveStore
    let keys: APIKeyStore

    struct Usage: ResponseEncodable {
        /// One group's totals; `group` is written under the grouping's name (`model`, `key`,
        /// `tenant`), and left out of the grand total.
        struct Row: Encodable {
            var group: (field: String, name: String)?
            let requests: Int
            let succeeded: Int
            let inputTokens: Int
            let outputTokens: Int
            let costUSD: Double
            /// Of `succeeded`, jobs answered from the response cache: provider calls saved.
            var cached = 0
            /// Dollars the cache saved; jobs completed through a provider batch and the dollars
            /// its discount saved.
            var savedUSD = 0.0
            var batched = 0
            var batchSavedUSD = 0.0

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: AnyField.self)
                if let group { try container.encode(group.name, forKey: AnyField(stringValue: group.field)) }
                try container.encode(requests, forKey: AnyField(stringValue: "requests"))
                try container.encode(succeeded, forKey: AnyField(stringValue: "succeeded"))
                try container.encode(inputTokens, forKey: AnyField(stringValue: "input_tokens"))
                try container.encode(outputTokens, forKey: AnyField(stringValue: "output_tokens"))
                try container.encode(cached, forKey: AnyField(stringValue: "cached"))
                try container.encode(Self.micro(costUSD), forKey: AnyField(stringValue: "cost_usd"))
                try container.encode(Self.micro(savedUSD), forKey: AnyField(stringValue: "saved_usd"))
                try container.encode(batched, forKey: AnyField(stringValue: "batched"))
                try container.encode(Self.micro(batchSavedUSD), forKey: AnyField(stringValue: "batch_saved_usd"))
            }

            /// Micro-dollars: a sum of fractions of a cent prints as the cents it is.
            static func micro(_ usd: Double) -> Double {
                let rounded = (usd * 1_000_000).rounded() / 1_000_000
                return rounded.isFinite ? rounded : 0
            }
        }

        var object = "usage"
        let from: Int64
        let to: Int64
        let groupBy: String
        @ExplicitNull var tenant: String?
        let data: [Row]
        let total: Row

        enum CodingKeys: String, CodingKey {
            case object, from, to, tenant, data, total
            case groupBy = "group_by"
        }
    }

    func addRoutes(to group: RouterGroup<SluiceRequestContext>) {
        group.get("usage", use: usage)
    }

    @Sendable func usage(_ request: Request, _ context: SluiceRequestContext) async throws -> Usage {
        let key = try context.require(.read)
        let query = request.uri.queryParameters
        let known: Set<String> = ["from", "to", "group_by", "tenant"]
        if let unknown = query.first(where: { !known.contains(String($0.key)) }) {
            throw APIError.invalid("unknown query parameter '\(unknown.key)'", param: String(unknown.key))
        }
        let to = try query["to"].map { try Self.instant(String($0), param: "to") } ?? UnixMillis.current()
        let from = try query["from"].map { try Self.instant(String($0), param: "from") } ?? UnixMillis(to.value - 30 * 86_400_000)
        guard from < to else { throw APIError.invalid("'from' must be before 'to'", param: "from") }
        let groupText = query["group_by"].map(String.init) ?? "model"
        guard let grouping = ArchiveStore.UsageGrouping(rawValue: groupText) else {
            throw APIError.invalid("'group_by' must be model, key or tenant", param: "group_by")
        }
        var tenant: String? = key.tenant
        if key.scopes.contains(.admin) {
            tenant = query["tenant"].map(String.init)
        } else if let asked = query["tenant"], String(asked) != key.tenant {
            throw APIError(.forbidden, type: "permission", message: "another tenant's usage needs the admin scope", param: "tenant")
        }
        let rows = try await archive.usage(from: from, to: to, grouping: grouping, tenant: tenant)
        var prefixes: [String: String] = [:]
        if grouping == .key {
            for apiKey in try await offPool({ try keys.list() }) { prefixes[String(apiKey.id)] = apiKey.prefix }
        }
        let data = rows.map { row in
            Usage.Row(
                group: (grouping.rawValue, grouping == .key ? (prefixes[row.group] ?? (row.group == "0" ? "none" : row.group)) : row.group),
                requests: row.requests, succeeded: row.succeeded, inputTokens: row.inputTokens, outputTokens: row.outputTokens,
                costUSD: row.cost, cached: row.cached, savedUSD: row.savedUSD, batched: row.batched, batchSavedUSD: row.batchSavedUSD)
        }
        let total = Usage.Row(
            group: nil, requests: rows.reduce(0) { Bounded.add($0, $1.requests) }, succeeded: rows.reduce(0) { Bounded.add($0, $1.succeeded) },
            inputTokens: rows.reduce(0) { Bounded.add($0, $1.inputTokens) }, outputTokens: rows.reduce(0) { Bounded.add($0, $1.outputTokens) },
            costUSD: rows.reduce(0) { $0 + $1.cost }, cached: rows.reduce(0) { Bounded.add($0, $1.cached) },
            savedUSD: rows.reduce(0) { $0 + $1.savedUSD }, batched: rows.reduce(0) { Bounded.add($0, $1.batched) },
            batchSavedUSD: rows.reduce(0) { $0 + $1.batchSavedUSD })
        return Usage(from: from.value / 1000, to: to.value / 1000, groupBy: grouping.rawValue, tenant: tenant, data: data, total: total)
    }

    /// Unix seconds, or an ISO 8601 date or date-time.
    static func instant(_ text: String, param: String) throws -> UnixMillis {
        let problem = APIError.invalid(
            "'\(param)' must be Unix seconds (0 to \(Int64(Bounded.maxUnixSeconds))) or an ISO 8601 date (2026-11-01) or date-time",
            param: param)
        // Printable ASCII only: Foundation's date formatters trap on some non-ASCII text.
        guard text.utf8.count <= 64, text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { throw problem }
        var seconds = Double(text)
        if seconds == nil {
            let full = ISO8601DateFormatter()
            let day = ISO8601DateFormatter()
            day.formatOptions = [.withFullDate]
            seconds = (full.date(from: text) ?? day.date(from: text))?.timeIntervalSince1970
        }
        guard let seconds, let millis = Bounded.unixMillis(seconds: seconds) else { throw problem }
        return UnixMillis(millis)
    }
}
