import Foundation

/// What the autoscaler knows of one lane, sampled about once a second.
public struct LaneSignals: Sendable, Hashable {
    public var lane: String
    /// Jobs ready to run, running (leased), and waiting (delayed or waiting to retry).
    public var ready: Int
    public var leased: Int
    public var delayed: Int
    /// How long the oldest ready job has waited, in seconds (nil: none is ready).
    public var oldestReadyAge: Double?
    /// Jobs arriving, and jobs finishing, per second (EWMA).
    public var arrivalRate: Double
    public var completionRate: Double
    /// The mean time a call takes, in seconds (EWMA; nil until one has finished).
    public var serviceTime: Double?
    /// The provider's limits: requests per minute and calls at once (nil: none).
    public var rpmLimit: Int?
    public var concurrencyLimit: Int?

    public init(
        lane: String, ready: Int = 0, leased: Int = 0, delayed: Int = 0, oldestReadyAge: Double? = nil, arrivalRate: Double = 0,
        completionRate: Double = 0, serviceTime: Double? = nil, rpmLimit: Int? = nil, concurrencyLimit: Int? = nil
    ) {
        self.lane = lane
        self.ready = ready
        self.leased = leased
        self.delayed = delayed
        self.oldestReadyAge = oldestReadyAge
        self.arrivalRate = arrivalRate
        self.completionRate = completionRate
        self.serviceTime = serviceTime
        self.rpmLimit = rpmLimit
        self.concurrencyLimit = concurrencyLimit
    }

    /// Nothing ready, running, waiting, or arriving.
    public var isIdle: Bool { ready == 0 && leased == 0 && delayed == 0 && arrivalRate < 0.01 }

    /// Calls in flight the provider's limits can use at once: its concurrency limit, and the
    /// RPM limit times the service time (Little's law); nil when it has neither.
    public var capacitySlots: (slots: Double, why: String)? {
        var best: (Double, String)?
        if let rpm = rpmLimit {
            let slots = Double(rpm) / 60 * (serviceTime ?? 1)
            best = (slots, "provider RPM \(rpm)")
        }
        if let concurrency = concurrencyLimit, best.map({ Double(concurrency) < $0.0 }) ?? true {
            best = (Double(concurrency), "provider concurrency \(concurrency)")
        }
        return best
    }

    /// Headroom under the provider's RPM limit, in requests per minute (nil: no limit).
    public var rpmHeadroom: Double? { rpmLimit.map { Double($0) - completionRate * 60 } }
}

/// How a pool of worker processes may be scaled.
public struct ScalingSettings: Sendable, Hashable {
    public var minWorkers = 1
    public var maxWorkers = 8
    /// Calls in flight per lane that one worker process runs (its pool's concurrency).
    public var slotsPerWorker = 64
    /// Clear a backlog within this long.
    public var drainWithin: Double = 60
    /// The service time assumed before any call has finished.
    public var defaultServiceTime: Double = 1
    /// The least time between two scale-ups, and between any change and a scale-down.
    public var upCooldown: Double = 5
    public var downCooldown: Double = 60
    /// Scale down only when the demand is below (1 − hysteresis) of the current size.
    public var hysteresis = 0.2
    /// Scale to zero workers once every lane has been idle this long (nil: never below
    /// `minWorkers`).
    public var scaleToZeroAfter: Double?

    public init() {}
}

/// Where a pool stands: its size now, and when it last changed.
public struct ScalingState: Sendable, Hashable {
    public var current: Int
    /// Seconds on any monotonic clock; nil: never.
    public var lastUp: Double?
    public var lastDown: Double?
    /// Since when every lane has been idle (nil: not idle).
    public var idleSince: Double?

    public init(current: Int, lastUp: Double? = nil, lastDown: Double? = nil, idleSince: Double? = nil) {
        self.current = current
        self.lastUp = lastUp
        self.lastDown = lastDown
        self.idleSince = idleSince
    }
}

/// A decision: how many worker processes the pool should have, and why, in words.
public struct ScalingDecision: Sendable, Hashable {
    public var desired: Int
    /// What the demand alone asks for, before bounds and damping.
    public var wanted: Int
    public var reason: String
    /// The state to carry to the next decision.
    public var state: ScalingState
}

/// The autoscaling policy: pure, so it is tested with synthetic signals.
///
/// - **Demand**, per lane, in calls in flight: the Little's-law term (arrival rate × service
///   time, and at least the calls running now) plus a drain term that clears the ready backlog
///   within `drainWithin` (backlog ÷ drainWithin × service time).
/// - **Capacity cap**: never more calls than the provider's limits can use (its concurrency
///   limit; its RPM limit × service time). More workers against a saturated provider only make
///   more 429s.
/// - **Workers**: each worker process runs `slotsPerWorker` calls per lane, so the pool needs the
///   most any lane needs, rounded up, within `minWorkers…maxWorkers`.
/// - **Damping**: up at once (at most every `upCooldown`); down only below the hysteresis band,
///   after `downCooldown` since the last change, and by at most half at a time. To zero only
///   after every lane has been idle for `scaleToZeroAfter`.
public enum ScalingPolicy {
    public static func decide(lanes: [LaneSignals], settings: ScalingSettings, state: ScalingState, now: Double) -> ScalingDecision {
        var state = state
        let idle = lanes.allSatisfy(\.isIdle)
        if idle { state.idleSince = state.idleSince ?? now } else { state.idleSince = nil }

        // The neediest lane decides.
        var neededSlots = 0.0
        var why = "no work"
        for lane in lanes where !lane.isIdle {
            let service = lane.serviceTime ?? settings.defaultServiceTime
            let steady = max(lane.arrivalRate * service, Double(lane.leased))
            let drain = Double(lane.ready) / settings.drainWithin * service
            var slots = steady + drain
            var text: String
            if lane.ready > 0 {
                text = "\(lane.lane): backlog \(format(lane.ready)), drain in \(Int(settings.drainWithin)) s"
                    + (lane.arrivalRate >= 0.01 ? " plus \(format(lane.arrivalRate)) jobs/s" : "")
                    + " at \(format(service)) s a call needs \(count(workers(slots, settings)))"
            } else {
                text = "\(lane.lane): \(format(lane.arrivalRate)) jobs/s at \(format(service)) s a call, \(lane.leased) running, needs \(count(workers(slots, settings)))"
            }
            if let cap = lane.capacitySlots, cap.slots < slots {
                slots = cap.slots
                text += "; capped at \(workers(slots, settings)) by \(cap.why)"
            }
            if slots > neededSlots || why == "no work" {
                neededSlots = max(neededSlots, slots)
                why = text
            }
        }
        let wanted = neededSlots <= 0 ? 0 : workers(neededSlots, settings)
        var target = wanted
        var reason = why
        // Bounds.
        if let after = settings.scaleToZeroAfter, idle, let since = state.idleSince, now - since >= after {
            target = 0
            reason = "idle for \(Int(now - since)) s: scale to zero"
        } else if target < settings.minWorkers {
            target = settings.minWorkers
            if wanted < settings.minWorkers { reason += "; kept at the minimum \(settings.minWorkers)" }
        }
        if target > settings.maxWorkers {
            target = settings.maxWorkers
            reason += "; capped at the maximum \(settings.maxWorkers)"
        }
        // Damping.
        let current = state.current
        var desired = current
        if target > current {
            if state.lastUp.map({ now - $0 >= settings.upCooldown }) ?? true {
                desired = target
                state.lastUp = now
            } else {
                reason += "; scale-up cooling down"
            }
        } else if target < current {
            let lastChange = max(state.lastUp ?? -.infinity, state.lastDown ?? -.infinity)
            let belowBand = Double(target) < Double(current) * (1 - settings.hysteresis) || target == 0
            if !belowBand {
                reason += "; within the hysteresis band, staying at \(current)"
            } else if now - lastChange < settings.downCooldown {
                reason += "; scale-down cooling down, staying at \(current)"
            } else {
                desired = max(target, current - max(1, current / 2))
                state.lastDown = now
                if desired > target { reason += "; stepping down to \(desired)" }
            }
        }
        state.current = desired
        return ScalingDecision(desired: desired, wanted: wanted, reason: reason, state: state)
    }

    private static func count(_ workers: Int) -> String { workers == 1 ? "1 worker" : "\(format(workers)) workers" }

    private static func workers(_ slots: Double, _ settings: ScalingSettings) -> Int {
        guard !slots.isNaN else { return 1 }
        // The signals come from counters a peer can inflate: a non-finite or huge figure is held
        // to a million workers (the settings' max applies after) rather than trapping.
        return max(1, Bounded.int((slots / Double(max(1, settings.slotsPerWorker))).rounded(.up), in: 1...1_000_000) ?? 1_000_000)
    }

    static func format(_ value: Double) -> String {
        guard value.isFinite else { return "\(value)" }
        if value >= 100 { return format(Bounded.int(value.rounded(), in: 0...Int.max) ?? Int.max) }
        return String(format: value < 10 ? "%.2g" : "%.0f", value)
    }

    static func format(_ value: Int) -> String {
        let formatter = NumberFormatter()
        formatter.numberStyle = .decimal
        formatter.groupingSeparator = ","
        return formatter.string(from: NSNumber(value: value)) ?? String(value)
    }
}
