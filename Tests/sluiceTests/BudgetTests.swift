import Foundation
import SluiceCore
import SluiceMock
import SluiceQueue
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
        try await withKeysDatabase { run in
            let created = try await run(
                ["keys", "create", "--tenant", "acme", "--scopes", "submit", "--budget-usd", "5", "--budget-per", "day", "--budget-on-exceeded", "fail", "--json"])
            #expect(created.status == 0, "\(created.output)")
            let prefix = try #require(object(created.output)["prefix"] as? String, "\(created.output)")
            let listed = try await run(["keys", "list"])
            #expect(listed.output.contains(prefix) && listed.output.contains("budget $5.000000/day (fail)"), "\(listed.output)")
            let bad = try await run(
                ["keys", "create", "--tenant", "acme", "--scopes", "submit", "--budget-usd", "5", "--budget-per", "week"])
            #expect(bad.status == 2)
            #expect(bad.output.contains("--budget-per: budget.per must be day or month"), "\(bad.output)")
            let alone = try await run(["keys", "create", "--tenant", "acme", "--scopes", "submit", "--budget-per", "day"])
            #expect(alone.status == 2 && alone.output.contains("need --budget-usd"), "\(alone.output)")
        }
    }

    /// The check at lease through `sluice up` (its workers configured from the file, the mock
    /// served over HTTP): two jobs admitted at submit, due in 20 s, whose budgets are then spent
    /// (set in Redis, as overdrawing settlements would): the tenant's `on_exceeded: fail` fails
    /// its job with budget_exceeded; the key's own budget (set through /v1/keys, `wait`) holds its
    /// job back until there is room again (`recheck: 1s`); another tenant's job runs meanwhile.
    @Test func spentBudgetsHoldJobsBackAtLease() async throws {
        try await withMockProvider(MockConfiguration()) { mock, base in
            let config = """
                providers:
                  mock: { kind: openai, base_url: "\(base)/v1", models: [gpt-4o-mini] }
                prices:
                  gpt-4o-mini: { input: 0, output: 80 }
                budgets:
                  tenants: { capped: { usd: 0.01, per: day, on_exceeded: fail } }
                  recheck: 1s

                """
            try await withRunningSluice(config: config) { sluice in
                func key(_ body: String) throws -> (secret: String, prefix: String) {
                    let created = try call("POST", sluice.url + "/v1/keys", bearer: sluice.adminKey, json: body)
                    #expect(created.status == 201, "\(created.body)")
                    return (try #require(object(created.body)["key"] as? String), try #require(object(created.body)["prefix"] as? String))
                }
                let capped = try key(#"{"tenant": "capped", "scopes": ["submit", "read"]}"#)
                let keyed = try key(#"{"tenant": "keyed", "scopes": ["submit", "read"], "budget": {"usd": 0.01, "per": "day"}}"#)
                let free = try key(#"{"tenant": "free", "scopes": ["submit", "read"]}"#)
                // Due in 20 s (whole seconds): room for two submits and the budgets spent before, on
                // a loaded machine too.
                let due = Int(Date().timeIntervalSince1970) + 20
                let later = #"{"lane": "mock/gpt-4o-mini", "not_before": \#(due), "request": {"model": "gpt-4o-mini", "max_tokens": 12, "messages": [{"role": "user", "content": "hi"}]}}"#
                func submit(_ key: String, _ body: String) throws -> JobID {
                    let answer = try call("POST", sluice.url + "/v1/jobs", bearer: key, json: body)
                    #expect(answer.status == 202, "\(answer.body)")
                    return try #require((object(answer.body)["id"] as? String).flatMap(JobID.init))
                }
                let failing = try submit(capped.secret, later)
                let waiting = try submit(keyed.secret, later)
                // Spent to the limit before the two are due.
                let now = UnixMillis.current()
                let tenant = Budgets.Applied(name: "tenant:capped", policy: BudgetPolicy(micros: 10_000, per: .day))
                let ownKey = Budgets.Applied(name: "key:\(keyed.prefix)", policy: BudgetPolicy(micros: 10_000, per: .day))
                for budget in [tenant, ownKey] { _ = try await sluice.queue.redis.send("HSET", BudgetStore.key(budget, at: now), "spent", "10000") }
                let running = try submit(free.secret, later.replacingOccurrences(of: #""not_before": \#(due), "#, with: ""))

                #expect(await eventually { (try? await sluice.queue.get(failing))?.state == .failed })
                let failed = try #require(try await sluice.queue.get(failing))
                #expect(failed.error?.hasPrefix("budget_exceeded: budget tenant:capped of $0.010000 per day has $0.010000 spent") == true, "\(failed.error ?? "")")
                #expect((try await sluice.queue.get(running))?.state == .succeeded)
                #expect(
                    await eventually(timeout: .seconds(30)) {
                        ((try? await sluice.queue.timeline(waiting)) ?? nil)?.contains { $0.info?.hasPrefix("budget_exceeded: budget key:\(keyed.prefix)") == true } == true
                    })
                try await Task.sleep(for: .seconds(2))
                #expect((try await sluice.queue.get(waiting)).map { !$0.state.isTerminal } == true)
                #expect(mock.stats().received == 1)
                // Room again: the waiting job runs at its next look.
                _ = try await sluice.queue.redis.send("HSET", BudgetStore.key(ownKey, at: now), "spent", "0")
                #expect(await eventually(timeout: .seconds(30)) { (try? await sluice.queue.get(waiting))?.state == .succeeded })
                #expect(mock.stats().received == 2)
            }
        }
    }
}
