import Foundation
import Logging
import ServiceLifecycle
import SluiceCore
import SluiceQueue

/// Watches the routes' canaries and rolls back the one that fails: about once a second it reads
/// each canary's recent outcomes and its main targets' (one pipeline per route), and when
/// `CanaryPolicy` says so sets the canary's weight to 0 (`RouteOverrides.rollBack`, a
/// compare-and-set: with a supervisor in every web process, one of them does it), logs a
/// warning and, with `alert_url`, queues a webhook.
///
/// A rolled-back canary stays at 0 until an operator sets its weight again (`PATCH
/// /v1/routes/{name}`) or resets the route; its error window then starts afresh. Routes without
/// a canary cost nothing: with none, the service only waits for shutdown, and a canary whose
/// weight in force is 0 is not read.
public struct CanarySupervisor: Service {
    public let overrides: RouteOverrides
    /// The routes that have a canary.
    public let routes: [SluiceConfiguration.Route]
    /// Where a rollback's webhook is queued (nil: none is sent).
    public let alerts: (any WebhookOutbox)?
    /// The ids of the API keys the canaries' `alert_key` prefixes name: a delivery is signed
    /// with its key's webhook secret.
    public let alertKeys: [String: Int64]
    /// How long it waits between two checks.
    public let interval: Duration
    let logger: Logger

    /// A supervisor of `routes`' canaries (the others are ignored).
    public init(
        overrides: RouteOverrides, routes: [String: SluiceConfiguration.Route], alerts: (any WebhookOutbox)? = nil,
        alertKeys: [String: Int64] = [:], interval: Duration = .seconds(1), logger: Logger
    ) {
        self.overrides = overrides
        self.routes = routes.values.filter { $0.canary != nil }.sorted { $0.name < $1.name }
        self.alerts = alerts
        self.alertKeys = alertKeys
        self.interval = interval
        self.logger = logger
    }

    /// Checks every `interval` until graceful shutdown, which also ends the wait between two
    /// checks (a check under way finishes first).
    public func run() async throws {
        guard !routes.isEmpty else {
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await self.check()
                do { try await Task.sleep(for: self.interval) } catch { return }
            }
        }
    }

    /// One check of every canary; the routes whose canary this call rolled back.
    @discardableResult
    public func check() async -> [String] {
        var rolledBack: [String] = []
        for route in routes {
            do {
                if try await check(route) { rolledBack.append(route.name) }
            } catch {
                logger.warning("canary check failed", metadata: ["route": "\(route.name)", "error": "\(error)"])
            }
        }
        return rolledBack
    }

    private func check(_ route: SluiceConfiguration.Route) async throws -> Bool {
        guard let canary = route.canary else { return false }
        // The weight in force as this process last read it (at most a refresh old): a canary at
        // 0 is not read at all.
        guard overrides.override(route.name)?.canaryWeight(canary) ?? canary.weight > 0 else { return false }
        var main: [String] = []
        for target in route.targets where target.lane != canary.lane && !main.contains(target.lane) { main.append(target.lane) }
        let reading = try await overrides.reading(route.name, canary: canary, main: main)
        guard reading.override.canaryWeight(canary) > 0 else { return false }
        let decision = CanaryPolicy.decide(
            canary: reading.canary, main: reading.main, maxErrorRate: canary.maxErrorRate, minCalls: canary.minCalls)
        guard decision == .rollBack else { return false }
        let rollback = RouteOverride.Rollback(
            at: UnixMillis.current(), lane: canary.lane, canary: reading.canary, main: reading.main, maxErrorRate: canary.maxErrorRate)
        let done = try await overrides.rollBack(
            route.name, version: reading.override.version, canary: canary, canaryTally: reading.canary, mainTally: reading.main,
            event: "canary \(canary.lane) rolled back: \(rollback.reason)")
        guard done else { return false }
        logger.warning(
            "canary rolled back",
            metadata: [
                "route": "\(route.name)", "target": "\(canary.lane)",
                "canary_error_rate": "\(reading.canary.rate)", "canary_calls": "\(reading.canary.calls)",
                "main_error_rate": "\(reading.main.rate)", "main_calls": "\(reading.main.calls)",
                "max_error_rate": "\(canary.maxErrorRate)",
            ])
        if let url = canary.alertURL, let alerts {
            await alert(route: route.name, canary: canary, rollback: rollback, url: url, alerts: alerts)
        }
        return true
    }

    /// Queues the rollback's webhook (`route.canary.rolled_back`), once per rollback.
    private func alert(route: String, canary: RouteCanary, rollback: RouteOverride.Rollback, url: String, alerts: any WebhookOutbox) async {
        guard let key = canary.alertKey.flatMap({ alertKeys[$0] }) else {
            logger.warning("canary alert not sent: no API key has its alert_key prefix", metadata: ["route": "\(route)"])
            return
        }
        let count = overrides.override(route)?.rollbacks ?? 0
        let body = Alert(
            type: "route.canary.rolled_back", route: route, target: canary.lane, at: rollback.at.value / 1000,
            maxErrorRate: canary.maxErrorRate, canary: rollback.canary, main: rollback.main)
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try await alerts.create(
                subject: "route_\(route)_rollback_\(count)", url: url, key: key, type: body.type, body: Array(try encoder.encode(body)))
        } catch {
            logger.warning("canary alert not queued", metadata: ["route": "\(route)", "error": "\(error)"])
        }
    }

    /// The alert's body.
    struct Alert: Encodable {
        let type: String
        let route: String
        let target: String
        let at: Int64
        let maxErrorRate: Double
        let canary: CanaryPolicy.Tally
        let main: CanaryPolicy.Tally

        enum CodingKeys: String, CodingKey {
            case type, route, target, at, canary, main
            case maxErrorRate = "max_error_rate"
        }
    }
}
