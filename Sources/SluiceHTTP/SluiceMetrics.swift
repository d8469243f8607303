import Foundation
import Hummingbird
import Prometheus
import SluiceCore
import SluiceQueue
import SluiceScaler
import Synchronization

/// The Prometheus exposition of `GET /metrics` (through swift-prometheus).
///
/// The figures come from the scaling monitor's latest sample (once a second, from Redis), so
/// every web process shows the same numbers, whichever process did the work:
/// - `sluice_queue_depth{lane}` (ready), `sluice_queue_leased{lane}`, `sluice_queue_delayed{lane}`,
///   `sluice_queue_oldest_age_seconds{lane}`;
/// - `sluice_jobs_total{lane,state}`: jobs that entered each state;
/// - `sluice_lane_arrival_rate{lane}`, `sluice_lane_completion_rate{lane}` (jobs/s, EWMA),
///   `sluice_lane_service_time_seconds{lane}`;
/// - `sluice_desired_workers{pool}`, `sluice_workers{pool}` (as the supervisor reports);
/// - `sluice_provider_latency_seconds{provider}` (a histogram of every worker's calls),
///   `sluice_provider_rate_limited_total{provider}` (429s), `sluice_provider_calls_total{provider}`;
/// - `sluice_route_canary_weight{route,target}` (the canary's weight in force, percent: 0 once
///   rolled back), `sluice_route_rollbacks_total{route}` (from the route's record in Redis);
/// - `sluice_cache_hits_total`, `sluice_cache_coalesced_total`, `sluice_cache_misses_total`: the
///   response cache's lookups (a miss is a job that called the provider and stored its answer);
///   `sluice_cache_saved_tokens_total`: the tokens the calls it answered would have used;
/// - `sluice_cache_saved_usd`, `sluice_batch_saved_usd`: the usage ledger's dollars saved, in all,
///   by the response cache (the answers' usage at list price) and by provider batches' discount
///   (gauges: the ledger's sums as the archiver has booked them).
public final class SluiceMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// The counters' last totals, to add only the growth.
    private let seen = Mutex<[String: Int]>([:])

    public init() {}

    /// A route's canary as `/metrics` shows it.
    struct Canary {
        let route: String
        let target: String
        /// Percent of the route's picks, in force now.
        let weight: Double
        let rollbacks: Int
    }

    /// Sets every metric from a snapshot, and renders the exposition.
    func render(
        samples: [LaneSample], decisions: [PoolDecision], providers: [(String, ProviderCallStats)], canaries: [Canary] = [],
        cache: ResponseCache.Stats = ResponseCache.Stats(), saved: (cache: Double, batch: Double)? = nil
    ) -> [UInt8] {
        if let saved {
            gauge("sluice_cache_saved_usd", labels: [], help: "US dollars the response cache saved (the ledger's saved_usd, in all)")
                .set(saved.cache.isFinite ? saved.cache : 0)
            gauge("sluice_batch_saved_usd", labels: [], help: "US dollars provider batches' discount saved (the ledger's batch_saved_usd, in all)")
                .set(saved.batch.isFinite ? saved.batch : 0)
        }
        grow(counter("sluice_cache_hits_total", labels: [], help: "Jobs answered from the response cache"), key: "cache hits", to: cache.hits)
        grow(
            counter("sluice_cache_coalesced_total", labels: [], help: "Jobs answered by an identical call they waited for"),
            key: "cache coalesced", to: cache.coalesced)
        grow(
            counter("sluice_cache_misses_total", labels: [], help: "Cacheable jobs that called the provider"),
            key: "cache misses", to: cache.misses)
        grow(
            counter("sluice_cache_saved_tokens_total", labels: [], help: "Tokens the calls answered from the cache would have used"),
            key: "cache saved tokens", to: cache.savedTokens)
        for canary in canaries {
            gauge(
                "sluice_route_canary_weight", labels: [("route", canary.route), ("target", canary.target)],
                help: "The canary's weight in force (percent of the route's picks; 0 once rolled back)"
            ).set(canary.weight)
            grow(
                counter("sluice_route_rollbacks_total", labels: [("route", canary.route)], help: "Canary rollbacks"),
                key: "rollbacks \(canary.route)", to: canary.rollbacks)
        }
        for sample in samples {
            let lane = [("lane", sample.signals.lane)]
            gauge("sluice_queue_depth", labels: lane, help: "Jobs ready to run").set(Double(sample.signals.ready))
            gauge("sluice_queue_leased", labels: lane, help: "Jobs running (leased)").set(Double(sample.signals.leased))
            gauge("sluice_queue_delayed", labels: lane, help: "Jobs delayed or waiting to retry")
                .set(Double(sample.signals.delayed))
            gauge("sluice_queue_oldest_age_seconds", labels: lane, help: "Age of the oldest ready job")
                .set(sample.signals.oldestReadyAge ?? 0)
            gauge("sluice_lane_arrival_rate", labels: lane, help: "Jobs arriving per second (EWMA)")
                .set(sample.signals.arrivalRate)
            gauge("sluice_lane_completion_rate", labels: lane, help: "Calls ending per second (EWMA)")
                .set(sample.signals.completionRate)
            gauge("sluice_lane_service_time_seconds", labels: lane, help: "Mean time a call takes (EWMA)")
                .set(sample.signals.serviceTime ?? 0)
            for (state, total) in sample.totals {
                grow(
                    counter("sluice_jobs_total", labels: [("lane", sample.signals.lane), ("state", state)], help: "Jobs that entered each state"),
                    key: "jobs \(sample.signals.lane) \(state)", to: total)
            }
        }
        for decision in decisions {
            let pool = [("pool", decision.pool)]
            gauge("sluice_desired_workers", labels: pool, help: "Worker processes the scaling policy wants")
                .set(Double(decision.desired))
            gauge("sluice_workers", labels: pool, help: "Worker processes running (as the supervisor reports)")
                .set(Double(decision.workers ?? 0))
        }
        for (provider, stats) in providers {
            grow(
                counter("sluice_provider_rate_limited_total", labels: [("provider", provider)], help: "429 answers"),
                key: "429 \(provider)", to: stats.rateLimited)
            grow(
                counter("sluice_provider_calls_total", labels: [("provider", provider)], help: "Provider calls"),
                key: "calls \(provider)", to: stats.count)
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(8_192)
        registry.emit(into: &buffer)
        // The latency histogram is kept in Redis by every worker process (ProviderCallStats), so its
        // buckets are written out as they stand, in the same exposition format.
        if !providers.isEmpty {
            var text = "# HELP sluice_provider_latency_seconds Provider call latency, every worker's calls\n"
            text += "# TYPE sluice_provider_latency_seconds histogram\n"
            for (provider, stats) in providers {
                for bucket in stats.cumulative {
                    text += "sluice_provider_latency_seconds_bucket{provider=\"\(provider)\",le=\"\(bucket.le)\"} \(bucket.count)\n"
                }
                text += "sluice_provider_latency_seconds_sum{provider=\"\(provider)\"} \(stats.sumSeconds)\n"
                text += "sluice_provider_latency_seconds_count{provider=\"\(provider)\"} \(stats.count)\n"
            }
            buffer += Array(text.utf8)
        }
        return buffer
    }

    /// The gauge `name` (written whole, its unit included) with these labels.
    private func gauge(_ name: String, labels: [(String, String)], help: String) -> Gauge {
        registry.makeGauge(descriptor: Self.descriptor(name, help: help), labels: labels)
    }

    /// The counter `name` (written whole, `_total` included) with these labels.
    private func counter(_ name: String, labels: [(String, String)], help: String) -> Counter {
        registry.makeCounter(descriptor: Self.descriptor(name, help: help), labels: labels)
    }

    /// A metric named exactly `name`: no namespace, subsystem or unit of the descriptor's own
    /// (the exposition's names stay as they were).
    private static func descriptor(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// Adds to `counter` what `key`'s total grew by since the last scrape.
    private func grow(_ counter: Counter, key: String, to total: Int) {
        let growth = seen.withLock { seen -> Int in
            defer { seen[key] = total }
            return max(0, total - (seen[key] ?? 0))
        }
        if growth > 0 { counter.increment(by: Int64(growth)) }
    }
}
