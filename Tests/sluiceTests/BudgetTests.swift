import Foundation
import SluiceMock
import SluiceTestSupport
import Testing

/// One request over a plain socket (`httpExchange`, UpCrashTests.swift): status, head and body.
private func call(_ method: String, _ url: String, bearer: String, json: String? = nil) throws -> (status: Int, head: String, body: String) {
    try httpExchange(method, url, bearer: bearer, json: json)
}

private func object(_ text: String) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}

/// Budgets end to end: a real `sluice up` (its Redis, its workers, its archiver), the mock
/// provider run as a server, and a webhook receiver on loopback.
@Suite struct BudgetTests {
    /// A tenant with a $0.01/day budget; each job costs 12 output tokens at $80 per million
    /// ($0.00096, estimated and actual alike, since the mock answers min(max_tokens, 12) tokens):
    /// ten jobs fit, the eleventh is refused with 429 budget_exceeded and a Retry-After until
    /// midnight UTC; the spend in /v1/budgets is the ledger's; the 50 % and 80 % alerts arrive once each.
    @Test func aTenantsDailyBudgetStopsSubmitsAndMatchesTheLedger() async throws {
        try await withPeerServer({ _ in .init(status: 204, body: "") }) { receiver, receiverURL in
            try await withMockProvider(MockConfiguration()) { _, base in
                let config = """
                    providers:
                      mock: { kind: openai, base_url: "\(base)/v1", models: [gpt-4o-mini] }
                    prices:
                      gpt-4o-mini: { input: 0, output: 80 }
                    webhooks: { schedule: [0s, 1s, 1s], jitter: 0, allow_cidrs: [127.0.0.0/8] }
                    budgets:
                      tenants: { budgeted: { usd: 0.01, per: day } }
                      alert_url: "\(receiverURL)/alerts"

                    """
                try await withRunningSluice(config: config) { sluice in
                    let created = try call("POST", sluice.url + "/v1/keys", bearer: sluice.adminKey, json: #"{"tenant": "budgeted", "scopes": ["submit", "read"]}"#)
                    #expect(created.status == 201, "\(created.body)")
                    let key = try #require(object(created.body)["key"] as? String)
                    let job = #"{"lane": "mock/gpt-4o-mini", "request": {"model": "gpt-4o-mini", "max_tokens": 12, "messages": [{"role": "user", "content": "hi"}]}}"#
                    var accepted: [String] = []
                    var refused: (status: Int, head: String, body: String)?
                    for _ in 0..<30 {
                        let answer = try call("POST", sluice.url + "/v1/jobs", bearer: key, json: job)
                        if answer.status == 202 {
                            accepted.append(try #require(object(answer.body)["id"] as? String))
                        } else {
                            refused = answer
                            break
                        }
                    }
                    #expect(accepted.count == 10)
                    let refusal = try #require(refused)
                    #expect(refusal.status == 429, "\(refusal.body)")
                    let error = object(refusal.body)["error"] as? [String: Any] ?? [:]
                    #expect(error["type"] as? String == "budget_exceeded", "\(refusal.body)")
                    #expect((error["message"] as? String ?? "").contains("tenant:budgeted"), "\(refusal.body)")
                    let retryLine = refusal.head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("retry-after:") }
                    let retryAfter = retryLine.flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
                    #expect(retryAfter.map { (1...86_400).contains($0) } == true, "\(refusal.head)")
                    // The synchronous facade is held to the same budget.
                    let facade = try call(
                        "POST", sluice.url + "/v1/chat/completions", bearer: key,
                        json: #"{"model": "gpt-4o-mini", "max_tokens": 12, "messages": [{"role": "user", "content": "hi"}]}"#)
                    #expect(facade.status == 429, "\(facade.body)")
                    #expect((object(facade.body)["error"] as? [String: Any])?["type"] as? String == "budget_exceeded", "\(facade.body)")

                    // Every job finishes and is archived: nothing is left reserved, and the spend
                    // is the ledger's cost (each job's cost rounded up to a micro-dollar).
                    var budget: [String: Any] = [:]
                    let settled = await eventually(timeout: .seconds(30)) {
                        let listing = (try? call("GET", sluice.url + "/v1/budgets", bearer: key)).map { object($0.body) } ?? [:]
                        budget = (listing["data"] as? [[String: Any]])?.first ?? [:]
                        return budget["reserved_usd"] as? Double == 0 && (budget["spent_usd"] as? Double ?? 0) > 0
                    }
                    #expect(settled, "\(budget)")
                    #expect(budget["name"] as? String == "tenant:budgeted")
                    #expect(budget["per"] as? String == "day")
                    #expect(budget["limit_usd"] as? Double == 0.01)
                    let spent = try #require(budget["spent_usd"] as? Double)
                    #expect(abs(spent - 0.0096) < 0.000_001, "\(budget)")
                    let usage = try call("GET", sluice.url + "/v1/usage?group_by=tenant", bearer: key)
                    let ledger = ((object(usage.body)["total"] as? [String: Any])?["cost_usd"] as? Double) ?? -1
                    #expect(abs(spent - ledger) <= 0.000_01, "\(usage.body)")

                    // 9,600 of 10,000 micro-dollars: the 50 % and 80 % alerts, once each.
                    #expect(await eventually(timeout: .seconds(30)) { receiver.count >= 2 }, "\(receiver.count)")
                    try await Task.sleep(for: .seconds(2))
                    #expect(receiver.count == 2)
                    // Still refused: what is spent leaves no room for another estimate.
                    #expect(try call("POST", sluice.url + "/v1/jobs", bearer: key, json: job).status == 429)

                    // `sluice usage` prints the ledger and the budget.
                    let (status, printed) = try await sluice.sluice(["usage", "--group-by", "tenant"], key: key)
                    #expect(status == 0, "\(printed)")
                    #expect(printed.contains("budgeted"), "\(printed)")
                    #expect(printed.contains("budget tenant:budgeted"), "\(printed)")
                    #expect(printed.contains("$0.009600 of $0.010000 (96%)"), "\(printed)")
                }
            }
        }
    }

    /// `sluice keys create --budget-usd 5 --budget-per day`: the key's budget, checked as the API
    /// checks one (exit code 2 naming the option), shown by `sluice keys list`.
    @Test func keysCreateSetsAKeysBudget() async throws {
        let work = NSTemporaryDirectory() + "sluice-keys-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try "".write(toFile: work + "/none.yaml", atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["SLUICE_DB"] = work + "/sluice.sqlite"
        environment["SLUICE_CONFIG"] = work + "/none.yaml"
        let created = try await runSluice(
            ["keys", "create", "--tenant", "acme", "--scopes", "submit", "--budget-usd", "5", "--budget-per", "day", "--budget-on-exceeded", "fail", "--json"],
            in: work, environment: environment)
        #expect(created.status == 0, "\(created.output)")
        let prefix = try #require(object(created.output)["prefix"] as? String, "\(created.output)")
        let listed = try await runSluice(["keys", "list"], in: work, environment: environment)
        #expect(listed.output.contains(prefix) && listed.output.contains("budget $5.000000/day (fail)"), "\(listed.output)")
        let bad = try await runSluice(
            ["keys", "create", "--tenant", "acme", "--scopes", "submit", "--budget-usd", "5", "--budget-per", "week"], in: work, environment: environment)
        #expect(bad.status == 2)
        #expect(bad.output.contains("--budget-per: budget.per must be day or month"), "\(bad.output)")
        let alone = try await runSluice(["keys", "create", "--tenant", "acme", "--scopes", "submit", "--budget-per", "day"], in: work, environment: environment)
        #expect(alone.status == 2 && alone.output.contains("need --budget-usd"), "\(alone.output)")
    }
}
