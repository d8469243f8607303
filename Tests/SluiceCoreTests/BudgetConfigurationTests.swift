import Foundation
import SluiceCore
import Testing

@Suite struct BudgetConfigurationTests {
    @Test func onExceededAndRecheckAreReadAndChecked() throws {
        let configuration = try SluiceConfiguration.load(
            yaml: """
                budgets:
                  tenants: { acme: { usd: 5, per: day, on_exceeded: fail }, other: { usd: 1 } }
                  recheck: 5m
                """)
        #expect(configuration.budgets.tenants["acme"] == BudgetPolicy(micros: 5_000_000, per: .day, onExceeded: .fail))
        #expect(configuration.budgets.tenants["other"]?.onExceeded == .wait)
        #expect(configuration.budgets.recheck == .seconds(300))
        #expect(try SluiceConfiguration.load(yaml: "budgets: { tenants: { a: { usd: 1 } } }").budgets.recheck == .seconds(3600))
        #expect(throws: ConfigurationError(key: "budgets.tenants.t.on_exceeded", problem: "must be wait or fail")) {
            try SluiceConfiguration.load(yaml: "budgets: { tenants: { t: { usd: 1, on_exceeded: queue } } }")
        }
        #expect(throws: ConfigurationError(key: "budgets.recheck", problem: "must be between 1s and 31 days")) {
            try SluiceConfiguration.load(yaml: "budgets: { recheck: 100ms }")
        }
    }

    /// The lease-time rule: held back when spent + reserved > limit, or spent >= limit; a job's
    /// own reservation (inside reserved) never holds it back by itself.
    @Test func theLeaseRule() {
        let policy = BudgetPolicy(micros: 1000, per: .day)
        #expect(!policy.exceeded(spent: 0, reserved: 1000))  // reserved up to the limit: every reserved job runs
        #expect(policy.exceeded(spent: 1, reserved: 1000))  // overdrawn
        #expect(policy.exceeded(spent: 1000, reserved: 0))  // used up: a $0 job stops too
        #expect(!policy.exceeded(spent: 999, reserved: 0))
        #expect(policy.exceeded(spent: Int64.max, reserved: Int64.max))  // no overflow
    }

    /// A key's budget as its jobs' envelopes and the key store carry it, and as the API reads it.
    @Test func aKeysBudgetTextAndJSON() throws {
        let policy = BudgetPolicy(micros: 5_000_000, per: .day, onExceeded: .fail)
        #expect(policy.envelopeText(keyPrefix: "sluice_ab12cd34") == "day 5000000 fail sluice_ab12cd34")
        #expect(BudgetPolicy.fromEnvelope("day 5000000 fail sluice_ab12cd34")?.policy == policy)
        #expect(BudgetPolicy(text: policy.text) == policy)
        // Stored in the job's envelope, read back by the worker.
        let envelope = JobEnvelope(route: "chat", budget: policy.envelopeText(keyPrefix: "sluice_ab12cd34"))
        #expect(String(decoding: envelope.encoded, as: UTF8.self) == #"{"budget":"day 5000000 fail sluice_ab12cd34","route":"chat"}"#)
        #expect(JobEnvelope(decoding: envelope.encoded) == envelope)
        for damaged in ["", "day", "week 5 fail k", "day -5 fail k", "day 1e300 wait k", "day 5 stop k", "day 5 wait "] {
            #expect(BudgetPolicy.fromEnvelope(damaged) == nil, "\(damaged)")
        }
        #expect(try BudgetPolicy.parse(JSONValue(parsing: #"{"usd": 5, "per": "day", "on_exceeded": "fail"}"#)) == policy)
        #expect(policy.json.jsonText == #"{"usd":5,"per":"day","on_exceeded":"fail"}"#)
        for (json, param) in [
            (#"{"usd": 0}"#, "budget.usd"), (#"{"usd": 1e300}"#, "budget.usd"), (#"{"usd": "5"}"#, "budget.usd"), (#"{"per": "day"}"#, "budget.usd"),
            (#"{"usd": 5, "per": "week"}"#, "budget.per"), (#"{"usd": 5, "on_exceeded": 1}"#, "budget.on_exceeded"),
            (#"{"usd": 5, "limit": 1}"#, "budget.limit"), ("[5]", "budget"),
        ] {
            #expect(throws: BudgetPolicy.Refusal.self, "\(json)") { try BudgetPolicy.parse(JSONValue(parsing: json)) }
            do { _ = try BudgetPolicy.parse(try JSONValue(parsing: json)) } catch let refusal as BudgetPolicy.Refusal {
                #expect(refusal.param == param, "\(json)")
            } catch {}
        }
    }

    @Test func budgetsAreReadStrictlyAndNameThePathAtFault() throws {
        let configuration = try SluiceConfiguration.load(
            yaml: """
                budgets:
                  keys: { sluice_ab12cd34: { usd: 5, per: day } }
                  tenants: { acme: { usd: 50 } }
                  routes: { chat: { usd: 0.01, per: month } }
                  alert_url: https://hooks.example.com/budget
                """)
        let budgets = configuration.budgets
        #expect(budgets.keys["sluice_ab12cd34"] == BudgetPolicy(micros: 5_000_000, per: .day))
        #expect(budgets.tenants["acme"] == BudgetPolicy(micros: 50_000_000, per: .month))
        #expect(budgets.routes["chat"] == BudgetPolicy(micros: 10_000, per: .month))
        #expect(budgets.alertURL == "https://hooks.example.com/budget")
        #expect(
            budgets.applying(keyPrefix: "sluice_ab12cd34", tenant: "acme", route: "chat").map(\.name)
                == ["key:sluice_ab12cd34", "tenant:acme", "route:chat"])
        #expect(budgets.applying(keyPrefix: "sluice_other000", tenant: "other", route: nil).isEmpty)

        #expect(throws: ConfigurationError(key: "budgets.tenants.acme.usd", problem: "must be a number within 1e-06...1000000000.0")) {
            try SluiceConfiguration.load(yaml: "budgets: { tenants: { acme: { usd: 1e300 } } }")
        }
        #expect(throws: ConfigurationError(key: "budgets.keys.k.per", problem: "must be day or month")) {
            try SluiceConfiguration.load(yaml: "budgets: { keys: { k: { usd: 1, per: week } } }")
        }
        #expect(throws: ConfigurationError(key: "budgets.routes.r.usd", problem: "is required: US dollars per period")) {
            try SluiceConfiguration.load(yaml: "budgets: { routes: { r: { per: day } } }")
        }
        #expect(throws: ConfigurationError(key: "budgets.tenants.t.limit", problem: "is not a known setting")) {
            try SluiceConfiguration.load(yaml: "budgets: { tenants: { t: { usd: 1, limit: 2 } } }")
        }
        #expect(throws: ConfigurationError(key: "budgets.alert_url", problem: "must be an http(s) URL")) {
            try SluiceConfiguration.load(yaml: "budgets: { alert_url: ftp://x }")
        }
    }

    @Test func theEstimateIsBytesOverFourInAndMaxTokensOut() {
        var budgets = Budgets()
        budgets.defaultMaxTokens = 100
        let prices = ["gpt-4o-mini": SluiceConfiguration.Price(input: 1, output: 10)]
        let payload = Array(#"{"model":"gpt-4o-mini","max_tokens":7,"messages":[]}"#.utf8)  // 52 bytes: 13 tokens in
        #expect(budgets.estimate(payload: payload, model: "gpt-4o-mini", prices: prices) == 13 + 70)
        let without = Array(#"{"messages":[]}"#.utf8)  // 15 bytes: 3 tokens in, the default 100 out
        #expect(budgets.estimate(payload: without, model: "gpt-4o-mini", prices: prices) == 3 + 1_000)
        // Hostile numbers do not trap, and are not estimated low: a huge max_tokens counts as
        // 10^12 tokens (not the default); a negative one is ignored; of two, the larger; no price is 0.
        let huge = Array(#"{"max_tokens":1e300}"#.utf8)
        #expect(budgets.estimate(payload: huge, model: "gpt-4o-mini", prices: prices) == 5 + 10_000_000_000_000)
        let past = Array(#"{"max_tokens":1000000000001}"#.utf8)
        #expect(budgets.estimate(payload: past, model: "gpt-4o-mini", prices: prices) == 7 + 10_000_000_000_000)
        let negative = Array(#"{"max_tokens":-5}"#.utf8)
        #expect(budgets.estimate(payload: negative, model: "gpt-4o-mini", prices: prices) == 4 + 1_000)
        let both = Array(#"{"max_completion_tokens":50,"max_tokens":7}"#.utf8)
        #expect(budgets.estimate(payload: both, model: "gpt-4o-mini", prices: prices) == 10 + 500)
        #expect(budgets.estimate(payload: payload, model: "unpriced", prices: prices) == 0)
        #expect(Budgets.micros(input: Int.max, output: Int.max, price: .init(input: 1_000_000, output: 1_000_000)) == 1_000_000_000_000_000)
    }
}
