import ArgumentParser
import Foundation
import SluiceClient

/// `sluice usage`: the usage ledger (`GET /v1/usage`) and the spend against each budget
/// (`GET /v1/budgets`).
struct Usage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the usage ledger (requests, tokens, cost) and the spend against each budget this period.")
    @OptionGroup var client: ClientOptions
    @Option(help: "Group the ledger by model, key or tenant.") var groupBy = "model"
    @Option(help: "From: Unix seconds or an ISO 8601 date (default 30 days ago).") var from: String?
    @Option(help: "To, exclusive: Unix seconds or an ISO 8601 date (default now).") var to: String?

    func run() async throws {
        try await ClientExit.wrap {
            var query = "group_by=" + (groupBy.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
            if let from { query += "&from=" + (from.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") }
            if let to { query += "&to=" + (to.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") }
            let (usage, budgets) = try await client.withClient { api in
                (try await api.call(.GET, "/v1/usage?" + query).bytes, try await api.call(.GET, "/v1/budgets").bytes)
            }
            let ledger = PrintedJSON.object(usage)
            let spend = PrintedJSON.object(budgets)
            if client.json {
                printJSON(["usage": ledger, "budgets": spend["data"] as? [Any] ?? []])
                return
            }
            let rows = ledger["data"] as? [[String: Any]] ?? []
            let width = max(5, rows.map { "\($0[groupBy] ?? "")".count }.max() ?? 0)
            func row(_ cells: [String]) -> String {
                cells[0].padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                    + cells.dropFirst().map { String(repeating: " ", count: max(0, 12 - $0.count)) + $0 }.joined(separator: " ")
            }
            func cells(_ name: String, _ values: [String: Any]) -> [String] {
                [name, "\(values["requests"] ?? 0)", "\(values["input_tokens"] ?? 0)", "\(values["output_tokens"] ?? 0)",
                    String(format: "$%.6f", values["cost_usd"] as? Double ?? 0), "\(values["cached"] ?? 0)",
                    String(format: "$%.6f", values["saved_usd"] as? Double ?? 0), "\(values["batched"] ?? 0)",
                    String(format: "$%.6f", values["batch_saved_usd"] as? Double ?? 0)]
            }
            say(row([groupBy.uppercased(), "REQUESTS", "INPUT", "OUTPUT", "COST", "CACHED", "CACHE SAVED", "BATCHED", "BATCH SAVED"]))
            for values in rows { say(row(cells("\(values[groupBy] ?? "?")", values))) }
            say(row(cells("total", ledger["total"] as? [String: Any] ?? [:])))
            let budgetRows = spend["data"] as? [[String: Any]] ?? []
            guard !budgetRows.isEmpty else { return }
            say("")
            for budget in budgetRows {
                let limit = budget["limit_usd"] as? Double ?? 0
                let spent = budget["spent_usd"] as? Double ?? 0
                let reserved = budget["reserved_usd"] as? Double ?? 0
                let percent = limit > 0 ? (spent / limit * 100) : 0
                let resets = (budget["resets_at"] as? Int).map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double($0))) } ?? "?"
                say(
                    "budget \(budget["name"] ?? "?")  \(budget["period"] ?? "?")  "
                        + String(format: "$%.6f of $%.6f (%.0f%%), $%.6f reserved", spent, limit, percent, reserved) + "  resets \(resets)")
            }
        }
    }
}
