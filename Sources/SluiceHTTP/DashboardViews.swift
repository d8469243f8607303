import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import SluiceCore
import SluiceQueue
import SluiceScaler
import SluiceStore
import SluiceWebhooks

/// The dashboard's templates (`Resources/ui/templates/*.mustache`, rendered by swift-mustache,
/// which HTML-escapes every `{{value}}`), its static files (`Resources/ui/static`), and the
/// values each page is rendered from. Loaded once per process from the module's bundle.
struct DashboardViews: Sendable {
    let library: MustacheLibrary
    let staticFiles: [String: (contentType: String, bytes: [UInt8])]

    static let shared: DashboardViews = {
        guard let root = Bundle.module.url(forResource: "ui", withExtension: nil) else {
            fatalError("Resources/ui is missing from SluiceHTTP's bundle")
        }
        let manager = FileManager.default
        var library = MustacheLibrary()
        let templates = root.appendingPathComponent("templates")
        for name in (try? manager.contentsOfDirectory(atPath: templates.path)) ?? [] where name.hasSuffix(".mustache") {
            guard let text = try? String(contentsOf: templates.appendingPathComponent(name), encoding: .utf8) else { continue }
            do { try library.register(text, named: String(name.dropLast(".mustache".count))) } catch {
                fatalError("the dashboard template \(name) does not parse: \(error)")
            }
        }
        var files: [String: (contentType: String, bytes: [UInt8])] = [:]
        let types = ["css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8", "svg": "image/svg+xml"]
        let statics = root.appendingPathComponent("static")
        for name in (try? manager.contentsOfDirectory(atPath: statics.path)) ?? [] {
            guard let type = types[(name as NSString).pathExtension], let data = manager.contents(atPath: statics.appendingPathComponent(name).path)
            else { continue }
            files[name] = (type, Array(data))
        }
        return DashboardViews(library: library, staticFiles: files)
    }()

    /// The page `template` rendered from `page`, as an HTML response.
    func render(_ template: String, _ page: Any, status: HTTPResponse.Status = .ok) -> Response {
        let html = library.render(page, withTemplate: template) ?? "template \(template) is missing"
        return Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    // MARK: - What the pages show

    /// The header of a signed-in page: who, the nav, and the logout form's token.
    struct Chrome {
        let tenant: String
        let keyPrefix: String
        let admin: Bool
        let csrf: String
        let nav: [NavItem]
    }

    struct NavItem {
        let href: String
        let label: String
        let current: Bool
    }

    struct Option {
        let value: String
        let selected: Bool
    }

    struct LoginPage {
        let title = "Log in"
        let loginToken: String
        let message: String?
    }

    struct ErrorPage {
        let title = "Error"
        let code: Int
        let reason: String
        let message: String

        init(status: HTTPResponse.Status, message: String) {
            code = status.code
            reason = status.reasonPhrase
            self.message = message
        }
    }

    struct OverviewPage {
        let title = "Overview"
        let chrome: Chrome
        let lanes: [LaneRow]
        /// How often the page's script reads `/ui/overview.json`, in ms, and as text (`2 s`).
        let refreshMillis: Int
        let refreshText: String

        init(chrome: Chrome, lanes: [LaneRow], refreshMillis: Int) {
            self.chrome = chrome
            self.lanes = lanes
            self.refreshMillis = refreshMillis
            refreshText = refreshMillis % 1000 == 0 ? "\(refreshMillis / 1000) s" : DashboardViews.age(Double(refreshMillis) / 1000)
        }
    }

    /// A lane's row of the overview; the sparklines are SVG polylines in a 120×24 box (the page's
    /// script redraws them from `/ui/overview.json` with the same scale).
    struct LaneRow {
        let lane: String
        /// The lane's jobs list, its name percent-encoded in the query.
        let jobsHref: String
        let ready: Int
        let leased: Int
        let delayed: Int
        let oldest: String
        let arrivalRate: String
        let completionRate: String
        let errorsPerMinute: String
        let rateLimitedPerMinute: String
        let depthPoints: String
        let completionPoints: String

        init(_ lane: DashboardLaneHistory.Lane) {
            self.lane = lane.lane
            jobsHref = DashboardViews.link("/ui/jobs", [("lane", lane.lane)])
            ready = lane.ready
            leased = lane.leased
            delayed = lane.delayed
            oldest = DashboardViews.shown(lane.oldestReadyAgeSeconds, DashboardViews.age)
            arrivalRate = DashboardViews.rate(lane.arrivalRate)
            completionRate = DashboardViews.rate(lane.completionRate)
            errorsPerMinute = DashboardViews.shown(lane.errorsPerMinute, DashboardViews.rate)
            rateLimitedPerMinute = DashboardViews.shown(lane.rateLimitedPerMinute, DashboardViews.rate)
            depthPoints = DashboardViews.sparkline(lane.depthHistory.map(Double.init))
            completionPoints = DashboardViews.sparkline(lane.completionHistory)
        }
    }

    struct JobsPage {
        let title = "Jobs"
        let chrome: Chrome
        let tenant: String
        let lane: String
        let before: String
        let states: [Option]
        let tenants: [Option]
        let jobs: [JobRow]
        let next: String?
        /// The "Retry these" confirmation's address, for a list of dead or failed jobs.
        var retryLink: String? = nil
    }

    /// `/ui/retry`: the confirmation of a filtered retry (`retried` nil), or what it did.
    struct RetryPage {
        struct Pair {
            let old: String
            let new: String
        }

        let title = "Retry jobs"
        let chrome: Chrome
        let state: String
        let lane: String
        let before: String
        let count: Int
        let retried: [Pair]?
        /// Whether this is the confirmation (nothing retried yet), and whether it has a job to
        /// retry (stored: the templates read stored properties only).
        let confirming: Bool
        let any: Bool

        init(chrome: Chrome, state: String, lane: String, before: String, count: Int, retried: [Pair]?) {
            self.chrome = chrome
            self.state = state
            self.lane = lane
            self.before = before
            self.count = count
            self.retried = retried
            confirming = retried == nil
            any = count > 0
        }
    }

    struct JobRow {
        let id: String
        let href: String
        let lane: String
        let tenant: String
        let state: String
        let created: String
        let attempts: Int

        init(_ job: Job) {
            id = job.id.rawValue
            href = "/ui/jobs/" + job.id.rawValue
            lane = job.lane
            tenant = job.tenant
            state = job.state.rawValue
            created = DashboardViews.time(job.createdAt)
            attempts = job.attempts
        }
    }

    struct JobPage {
        struct Event {
            let at: String
            let state: String
            let info: String?
        }

        struct Delivery {
            let id: String
            let job: String
            let url: String
            let status: String
            let attempts: Int
            let lastCode: Int?
            let lastError: String?
            /// A finished delivery that did not arrive, and a key that may replay it.
            let replayable: Bool

            init(_ delivery: WebhookStore.Delivery, canReplay: Bool) {
                id = delivery.id
                job = delivery.job
                url = delivery.url
                status = delivery.status
                attempts = delivery.attempts
                lastCode = delivery.lastCode
                lastError = delivery.lastError
                replayable = canReplay && (delivery.status == "dead" || delivery.status == "disabled")
            }
        }

        let title: String
        let chrome: Chrome
        let id: String
        let lane: String
        let tenant: String
        let state: String
        let attempts: Int
        let maxAttempts: Int
        let priority: Int
        let created: String
        let finished: String?
        let request: String
        let result: String?
        let error: String?
        let timeline: [Event]
        let deliveries: [Delivery]
        let hasDeliveries: Bool
        let cancellable: Bool
        /// A dead or failed job not yet retried, and a key that may retry it.
        let retryable: Bool
        let retriedAs: String?
        let notice: String?
        /// Whether the page follows the job's events (it has not finished), and how many
        /// timeline entries it shows already.
        let followed: Bool
        let timelineCount: Int

        init(
            chrome: Chrome, job: Job, timeline: [TimelineEntry], deliveries: [WebhookStore.Delivery], canReplay: Bool, cancellable: Bool,
            notice: String?, retryable: Bool = false
        ) {
            title = "Job " + job.id.rawValue
            self.chrome = chrome
            id = job.id.rawValue
            lane = job.lane
            tenant = job.tenant
            state = job.state.rawValue
            attempts = job.attempts
            maxAttempts = job.maxAttempts
            priority = job.priority
            created = DashboardViews.time(job.createdAt)
            finished = job.finishedAt.map(DashboardViews.time)
            request = DashboardViews.excerpt(job.payload)
            result = job.result.map(DashboardViews.excerpt)
            error = job.error
            self.timeline = timeline.map { Event(at: DashboardViews.time($0.at), state: $0.state.rawValue, info: $0.info) }
            self.deliveries = deliveries.map { Delivery($0, canReplay: canReplay) }
            hasDeliveries = !deliveries.isEmpty
            followed = !job.state.isTerminal
            timelineCount = timeline.count
            self.cancellable = cancellable
            self.retryable = retryable
            retriedAs = job.retriedAs?.rawValue
            self.notice = notice
        }
    }

    struct DeadLettersPage {
        let title = "Dead letters"
        let chrome: Chrome
        let tenant: String
        let jobs: [JobRow]
        let deliveries: [JobPage.Delivery]
        let showDeliveries: Bool
        let notice: String?
    }

    struct BatchesPage {
        let title = "Batches"
        let chrome: Chrome
        let tenant: String
        /// Whether this process serves the batch APIs at all.
        let served: Bool
        let batches: [BatchRow]
    }

    /// A batch with its counts, and its progress as a 200-wide bar: the requests ended
    /// (succeeded, failed, cancelled, expired) of its total.
    struct BatchRow {
        let id: String
        let api: String
        let endpoint: String
        let status: String
        let total: Int
        let succeeded: Int
        let failed: Int
        let ended: Int
        let succeededWidth: Int
        let failedWidth: Int
        let failedX: Int
        let percent: Int
        let created: String

        init(_ batch: BatchRecord) {
            id = batch.id
            api = batch.api
            endpoint = batch.endpoint
            status = batch.status
            total = max(0, batch.total)
            succeeded = max(0, batch.succeeded)
            failed = [batch.failed, batch.cancelled, batch.expired].reduce(0) { Bounded.add($0, max(0, $1)) }
            ended = Bounded.add(succeeded, failed)
            let scale = total > 0 ? 200 / Double(total) : 0
            succeededWidth = Int((Double(min(succeeded, total)) * scale).rounded())
            failedWidth = Int((Double(min(failed, max(0, total - succeeded))) * scale).rounded())
            failedX = succeededWidth
            percent = total > 0 ? Int((Double(min(ended, total)) * 100 / Double(total)).rounded(.down)) : 0
            created = DashboardViews.time(batch.createdAt)
        }
    }

    struct ProvidersPage {
        let title = "Providers"
        let chrome: Chrome
        let providers: [ProviderRow]
        /// How often the page's script fetches the providers again (`/ui/providers/cards`), in ms.
        let refreshMillis: Int
    }

    /// A provider as `/v1/providers` reports it, with its calls' latency percentiles (the upper
    /// bound of the histogram bucket each falls in, as Prometheus would estimate no better).
    struct ProviderRow {
        struct Lane {
            let lane: String
            let jobsHref: String
            let ready: Int
            let leased: Int
            let delayed: Int
            let breaker: String
            let breakerOpen: Bool
            let breakerReason: String
        }

        let name: String
        let kind: String
        let baseURL: String
        let rpm: String
        let tpm: String
        let concurrency: String
        let paused: String?
        let resuming: String?
        let announced: String?
        let inFlight: Int
        let calls: Int
        let rateLimited: Int
        let p50: String
        let p95: String
        let p99: String
        let lanes: [Lane]
        let lastErrors: [LastError]
        let hasErrors: Bool

        /// A failed call: when, its status (or "no answer"), its kind, message and model.
        struct LastError {
            let at: String
            let status: String
            let kind: String
            let message: String
            let model: String
        }

        init(_ provider: ProvidersController.Provider, stats: ProviderCallStats?) {
            name = provider.provider
            kind = provider.kind
            baseURL = provider.baseURL
            rpm = DashboardViews.shown(provider.limits.rpm)
            tpm = DashboardViews.shown(provider.limits.tpm)
            concurrency = DashboardViews.shown(provider.limits.concurrency)
            paused = provider.pausedUntil.flatMap(Bounded.unixMillis(seconds:)).map { "until " + DashboardViews.time(UnixMillis($0)) }
            resuming = provider.resuming.map { $0.probe ? "probing with one call" : "window of \($0.window) calls" }
            announced = provider.announced.map { announced in
                var parts: [String] = []
                if let remaining = announced.requestsRemaining { parts.append("\(remaining)/\(announced.requestsLimit.map(String.init) ?? "?") requests left") }
                if let remaining = announced.tokensRemaining { parts.append("\(remaining)/\(announced.tokensLimit.map(String.init) ?? "?") tokens left") }
                return parts.isEmpty ? "–" : parts.joined(separator: ", ")
            }
            inFlight = provider.inFlight
            calls = stats?.count ?? 0
            rateLimited = stats?.rateLimited ?? 0
            p50 = DashboardViews.shown(stats) { DashboardViews.percentile(0.5, of: $0) }
            p95 = DashboardViews.shown(stats) { DashboardViews.percentile(0.95, of: $0) }
            p99 = DashboardViews.shown(stats) { DashboardViews.percentile(0.99, of: $0) }
            lanes = provider.lanes.map {
                Lane(
                    lane: $0.lane, jobsHref: DashboardViews.link("/ui/jobs", [("lane", $0.lane)]), ready: $0.ready, leased: $0.leased,
                    delayed: $0.delayed, breaker: $0.breaker.state,
                    breakerOpen: $0.breaker.state != "closed", breakerReason: $0.breaker.reason)
            }
            lastErrors = provider.lastErrors.map {
                LastError(
                    at: DashboardViews.shown(Bounded.unixMillis(seconds: $0.at)) { DashboardViews.time(UnixMillis($0)) },
                    status: $0.status.map { "HTTP \($0)" } ?? "no answer", kind: $0.kind, message: $0.message, model: DashboardViews.shown($0.model))
            }
            hasErrors = !lastErrors.isEmpty
        }
    }

    /// `≤ 0.25 s`: the upper bound of the bucket holding the `quantile`th call; "–" with no calls.
    static func percentile(_ quantile: Double, of stats: ProviderCallStats) -> String {
        guard let total = stats.cumulative.last?.count, total > 0 else { return "–" }
        let rank = Double(total) * quantile
        guard let bucket = stats.cumulative.first(where: { Double($0.count) >= rank }) else { return "–" }
        return bucket.le == "+Inf" ? "> 120 s" : "≤ " + bucket.le + " s"
    }

    struct ScalingPage {
        let title = "Scaling"
        let chrome: Chrome
        /// Whether this process runs a scaling monitor at all.
        let monitored: Bool
        let pools: [PoolRow]
        /// How often the page's script fetches the pools again (`/ui/scaling/pools`), in ms.
        let refreshMillis: Int
    }

    /// A pool's decision, its chart and recent decisions. `reason` and `lanes` are an admin's
    /// to see (lanes are every tenant's, as `/v1/scaling` rules); `full` says whether they are shown.
    struct PoolRow {
        struct Lane {
            let lane: String
            let ready: Int
            let leased: Int
            let arrivalRate: String
            let completionRate: String
            let serviceTime: String
        }

        let pool: String
        let desired: Int
        let workers: String
        let wanted: Int
        let reason: String?
        let at: String
        let source: String
        let lanes: [Lane]
        let full: Bool
        let chart: DashboardScalingChart

        init(_ decision: PoolDecision, full: Bool, chart: DashboardScalingChart) {
            pool = decision.pool
            desired = decision.desired
            workers = DashboardViews.shown(decision.workers)
            wanted = decision.wanted
            reason = full ? decision.reason : nil
            at = DashboardViews.time(decision.at)
            source = decision.source
            self.full = full
            self.chart = chart
            lanes = !full ? [] : decision.lanes.map {
                Lane(
                    lane: $0.lane, ready: $0.ready, leased: $0.leased, arrivalRate: DashboardViews.rate($0.arrivalRate),
                    completionRate: DashboardViews.rate($0.completionRate), serviceTime: DashboardViews.shown($0.serviceTime, DashboardViews.age))
            }
        }
    }

    struct UsagePage {
        struct Row {
            let group: String
            let requests: Int
            let succeeded: Int
            let inputTokens: Int
            let outputTokens: Int
            let cost: String
            let cached: Int
            /// The cost bar's length in the chart (0-300), and its vertical place.
            let bar: Int
            let y: Int
            let textY: Int
        }

        let title = "Usage"
        let chrome: Chrome
        let rows: [Row]
        let total: Row
        let chartHeight: Int
        let from: String
        let to: String
        let period: String
        let groupings: [Option]
        let tenants: [Option]
        let allTenants: Bool
        let csv: String

        init(
            chrome: Chrome, rows: [UsageRow], from: String, to: String, period: String, groupings: [Option], tenants: [Option],
            allTenants: Bool, csv: String
        ) {
            self.chrome = chrome
            // The chart: one bar per group, by cost (by requests when nothing has a price).
            let byCost = rows.contains { $0.cost > 0 }
            let measure: (UsageRow) -> Double = { byCost ? $0.cost : Double($0.requests) }
            let top = max(rows.map(measure).filter(\.isFinite).max() ?? 0, .leastNonzeroMagnitude)
            self.rows = rows.enumerated().map { index, row in
                let share = measure(row).isFinite ? max(0, measure(row)) / top : 0
                return Row(
                    group: row.group, requests: row.requests, succeeded: row.succeeded, inputTokens: row.inputTokens,
                    outputTokens: row.outputTokens, cost: DashboardViews.dollars(row.cost), cached: row.cached,
                    bar: Int((share * 300).rounded()), y: index * 22, textY: index * 22 + 14)
            }
            func sum(_ field: KeyPath<UsageRow, Int>) -> Int { rows.reduce(0) { Bounded.add($0, $1[keyPath: field]) } }
            total = Row(
                group: "total", requests: sum(\.requests), succeeded: sum(\.succeeded), inputTokens: sum(\.inputTokens),
                outputTokens: sum(\.outputTokens), cost: DashboardViews.dollars(rows.reduce(0) { $0 + $1.cost }), cached: sum(\.cached),
                bar: 0, y: 0, textY: 0)
            chartHeight = max(22, rows.count * 22)
            self.from = from
            self.to = to
            self.period = period
            self.groupings = groupings
            self.tenants = tenants
            self.allTenants = allTenants
            self.csv = csv
        }
    }

    static func dollars(_ usd: Double) -> String {
        guard usd.isFinite else { return "–" }
        return String(format: "$%.4f", usd)
    }

    /// The ledger's rows as CSV (RFC 4180). A group is a model or tenant name a client chose: a
    /// cell that a spreadsheet would read as a formula (`=`, `+`, `-`, `@`, tab, CR) is prefixed with `'`.
    static func usageCSV(_ rows: [UsageRow], grouping: String) -> String {
        func cell(_ text: String) -> String {
            var text = text
            if let first = text.first, "=+-@\t\r".contains(first) { text = "'" + text }
            guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
            return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        var lines = [
            [grouping, "requests", "succeeded", "input_tokens", "output_tokens", "cost_usd", "cached", "saved_usd", "batched", "batch_saved_usd"]
                .joined(separator: ",")
        ]
        for row in rows {
            lines.append(
                [
                    cell(row.group), String(row.requests), String(row.succeeded), String(row.inputTokens), String(row.outputTokens),
                    String(format: "%.6f", row.cost.isFinite ? row.cost : 0), String(row.cached),
                    String(format: "%.6f", row.savedUSD.isFinite ? row.savedUSD : 0), String(row.batched),
                    String(format: "%.6f", row.batchSavedUSD.isFinite ? row.batchSavedUSD : 0),
                ].joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    struct KeysPage {
        let title = "Keys"
        let chrome: Chrome
        let keys: [KeyRow]
        let created: CreatedKey?
        let notice: String?
    }

    /// A key just created: the only time its secret is shown.
    struct CreatedKey {
        let secret: String
        let prefix: String
        let tenant: String
    }

    struct KeyRow {
        let prefix: String
        let tenant: String
        let scopes: String
        let created: String
        let lastUsed: String
        let revoked: String?
        let live: Bool
        /// The key this session logged in with (revoking it ends the session).
        let mine: Bool

        init(_ key: APIKey, mine: Bool) {
            prefix = key.prefix
            tenant = key.tenant
            scopes = Scope.format(key.scopes)
            created = DashboardViews.time(key.createdAt)
            lastUsed = key.lastUsedAt.map(DashboardViews.time) ?? "never"
            revoked = key.revokedAt.map(DashboardViews.time)
            live = !key.isRevoked
            self.mine = mine
        }
    }

    // MARK: - Formatting

    /// A query value's characters left as they are: RFC 3986's unreserved ones, and `/`, `:`, `@`.
    /// Everything else (a lane or tenant may hold `&`, `#`, `+`, `%`, `=`, a space) is
    /// percent-encoded, so the value reads back exactly as it was.
    static let queryValueCharacters = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/:@")

    /// `path?name=value&…`, each name and value percent-encoded (`queryValueCharacters`); an item
    /// with a nil value is left out, and so is the `?` when none is left.
    static func link(_ path: String, _ items: [(name: String, value: String?)]) -> String {
        let pairs = items.compactMap { item in
            item.value.map { value in
                (item.name.addingPercentEncoding(withAllowedCharacters: queryValueCharacters) ?? "") + "="
                    + (value.addingPercentEncoding(withAllowedCharacters: queryValueCharacters) ?? "")
            }
        }
        return pairs.isEmpty ? path : path + "?" + pairs.joined(separator: "&")
    }

    /// The first 64 KiB of a body as text (a page must not grow with a 100 MB result).
    static func excerpt(_ bytes: [UInt8]) -> String {
        let limit = 64 << 10
        guard bytes.count > limit else { return String(decoding: bytes, as: UTF8.self) }
        return String(decoding: bytes.prefix(limit), as: UTF8.self) + "\n… (\(bytes.count - limit) more bytes)"
    }

    /// `2026-12-02T02:29:50.123Z`.
    static func time(_ at: UnixMillis) -> String {
        let date = Date(timeIntervalSince1970: Double(at.value) / 1000)
        return Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
    }

    static func age(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "–" }
        if seconds < 1 { return String(format: "%.0f ms", seconds * 1000) }
        if seconds < 60 { return String(format: "%.1f s", seconds) }
        if seconds < 3600 { return String(format: "%.1f min", seconds / 60) }
        return String(format: "%.1f h", seconds / 3600)
    }

    /// A row's cell for a value that may be absent: `text` of it, or "–" (every row shows an
    /// absent figure the same way).
    static func shown<Value>(_ value: Value?, _ text: (Value) -> String) -> String { value.map(text) ?? "–" }

    static func shown<Value: CustomStringConvertible>(_ value: Value?) -> String { shown(value) { $0.description } }

    static func rate(_ value: Double) -> String {
        guard value.isFinite else { return "–" }
        return value < 10 ? String(format: "%.2f", value) : String(format: "%.0f", value)
    }

    /// `x,y` points of a polyline through `values`, scaled into a 120×24 box (the newest at the right).
    static func sparkline(_ values: [Double]) -> String {
        guard !values.isEmpty else { return "" }
        let top = max(values.filter(\.isFinite).max() ?? 0, 1)
        let step = values.count > 1 ? 120 / Double(values.count - 1) : 0
        return values.enumerated().map { index, value in
            let y = 23 - 22 * (value.isFinite ? max(0, value) : 0) / top
            return String(format: "%.1f,%.1f", Double(index) * step, y)
        }.joined(separator: " ")
    }
}
