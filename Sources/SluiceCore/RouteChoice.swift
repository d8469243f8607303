import Foundation

extension SluiceConfiguration.Route {
    /// How a route chooses a job's target (`strategy:` in the route's mapping form).
    public enum Strategy: String, Sendable, Hashable, CaseIterable {
        /// Drawn by weight (an A/B split); the default when weights are given.
        case weighted
        /// The first target; the others take the jobs the first cannot (divert). The default without weights.
        case fallback
        /// The target with the largest share of its capacity free right now.
        case leastBusy = "least_busy"
        /// The target with the lowest recent p50 latency, with a little exploration.
        case latency
        /// The cheapest target that can finish before the job's deadline.
        case cost

        /// Whether the strategy reads what is measured (the route board's snapshot).
        public var measured: Bool {
            switch self {
            case .weighted, .fallback: false
            case .leastBusy, .latency, .cost: true
            }
        }
    }
}

extension SluiceConfiguration.Route {
    /// The lane a job goes to, and why (the note of its first timeline entry, e.g.
    /// `route support (least_busy): mock-b, 14 of 16 free (mock-a 3/8 free; mock-c 9/16 free)`). Pure:
    /// `conditions` and `random` are all it reads.
    ///
    /// - first, the route's runtime overrides in `conditions` (weights, the canary's weight) replace
    ///   the configured ones; then a canary takes its weight in percent of the picks (`RouteCanary`);
    ///   the strategy chooses among the main targets for the rest;
    /// - weighted: drawn by weight; fallback: the first target.
    /// - least_busy: the largest share free of the target's capacity (its provider's concurrency
    ///   limit, else 64) after its provider's calls in flight, its lane's ready jobs and this
    ///   process's picks since the figures were read; ties go to the larger number free, then to
    ///   the order listed.
    /// - latency: a target never measured, or not for 30 s, gets this window's probe (one per
    ///   window, through `picked`; one of them at random when several wait); otherwise 5% of
    ///   picks go to another target at random, the rest to the lowest p50. With nothing
    ///   measured, the least picked.
    /// - cost: the cheapest (input + output price per million tokens; a model without a price
    ///   is dearest) of the targets estimated to finish before `deadline`; with no deadline, the
    ///   cheapest; when none fits, the earliest estimated finish.
    public func choose<R: RandomNumberGenerator>(
        conditions: RouteConditions, deadline: Int64?, random: inout R
    ) -> (lane: String, why: String) {
        // Runtime overrides first (weights, the canary's weight), then the canary's share of picks.
        if let override = conditions.overrides[name], override.version > 0 {
            var conditions = conditions
            conditions.overrides[name] = nil
            return override.applied(to: self).choose(conditions: conditions, deadline: deadline, random: &random)
        }
        if let canary, RouteCanary.draws(weight: canary.weight, using: &random) {
            return (canary.lane, "route \(name) (canary): \(canary.lane), \(Self.figure(canary.weight))% of picks")
        }
        // The configuration refuses a route without targets; one built otherwise gets lane "",
        // which no provider serves (admission refuses it), rather than a trap.
        guard !targets.isEmpty else { return ("", "route \(name): no targets") }
        guard targets.count > 1 else {
            return (targets[0].lane, "route \(name) (\(strategy.rawValue)): \(targets[0].lane), its only target")
        }
        switch strategy {
        case .weighted:
            return chooseWeighted(random: &random)
        case .fallback:
            return (targets[0].lane, "route \(name) (fallback): \(targets[0].lane), the first of \(targets.count)")
        case .leastBusy:
            return chooseLeastBusy(conditions)
        case .latency:
            return chooseLatency(conditions, random: &random)
        case .cost:
            return chooseCost(conditions, deadline: deadline)
        }
    }

    private func chooseWeighted<R: RandomNumberGenerator>(random: inout R) -> (lane: String, why: String) {
        // A weight below 0 or not a number counts as 0 (max(0, .nan) is 0), so the draw's range
        // is never empty or NaN, whatever a programmatic caller put in the route.
        let total = targets.reduce(0) { $0 + max(0, $1.weight) }
        guard total > 0, total.isFinite else { return (targets[0].lane, "route \(name) (weighted): \(targets[0].lane), no weight set") }
        var draw = Double.random(in: 0..<total, using: &random)
        var chosen = targets.lastIndex { max(0, $0.weight) > 0 } ?? 0  // where rounding leaves the draw
        for (index, target) in targets.enumerated() where max(0, target.weight) > 0 {
            if draw < target.weight {
                chosen = index
                break
            }
            draw -= target.weight
        }
        let target = targets[chosen]
        return (target.lane, "route \(name) (weighted): \(target.lane), weight \(Self.figure(target.weight)) of \(Self.figure(total))")
    }

    /// A target's capacity and what is free of it now.
    struct Room {
        var lane: String
        var capacity: Int
        var free: Int
        var share: Double { Double(free) / Double(capacity) }
    }

    func rooms(_ conditions: RouteConditions) -> [Room] {
        targets.map { target in
            let capacity = max(1, conditions.limits[target.provider]?.concurrency ?? RouteConditions.unlimitedCapacity)
            let lane = conditions.lanes[target.lane] ?? RouteConditions.Lane()
            let busy = Bounded.add(Bounded.add(max(0, lane.inFlight), max(0, lane.queued)), max(0, lane.picked))
            return Room(lane: target.lane, capacity: capacity, free: Bounded.add(capacity, -busy))
        }
    }

    private func chooseLeastBusy(_ conditions: RouteConditions) -> (lane: String, why: String) {
        let rooms = rooms(conditions)
        var best = 0
        for index in rooms.indices.dropFirst() {
            let room = rooms[index]
            let leader = rooms[best]
            if room.share > leader.share || (room.share == leader.share && room.free > leader.free) { best = index }
        }
        // Past its capacity a target's jobs wait: said as how many, not as a negative number free.
        func free(_ room: Room, short: Bool) -> String {
            if room.free >= 0 { return short ? "\(room.free)/\(room.capacity) free" : "\(room.free) of \(room.capacity) free" }
            return (short ? "0/\(room.capacity) free" : "none of \(room.capacity) free") + ", \(Bounded.add(0, -room.free)) waiting"
        }
        let others = rooms.indices.filter { $0 != best }.map { "\(rooms[$0].lane) \(free(rooms[$0], short: true))" }
        let room = rooms[best]
        return (room.lane, "route \(name) (least_busy): \(room.lane), \(free(room, short: false)) (\(others.joined(separator: "; ")))")
    }

    private func chooseLatency<R: RandomNumberGenerator>(_ conditions: RouteConditions, random: inout R) -> (lane: String, why: String) {
        let lanes = targets.map { conditions.lanes[$0.lane] ?? RouteConditions.Lane() }
        func fresh(_ lane: RouteConditions.Lane) -> Bool {
            guard lane.latencyMs != nil, let at = lane.measuredAt else { return false }
            return Double(conditions.now) - Double(at) <= Double(RouteConditions.staleAfterMs)  // in Double: no overflow
        }
        func figures(except skip: Int) -> String {
            targets.indices.filter { $0 != skip }.map { index in
                "\(targets[index].lane) " + (lanes[index].latencyMs.map { "\(Self.figure($0)) ms" } ?? "unmeasured")
            }.joined(separator: ", ")
        }
        // A stale or unmeasured target gets one probe per window (this process's picks are
        // counted until the next read); when several are, one of them at random.
        let unprobed = targets.indices.filter { !fresh(lanes[$0]) && lanes[$0].picked == 0 }
        if !unprobed.isEmpty {
            let stale = unprobed[Int.random(in: 0..<unprobed.count, using: &random)]
            let age = lanes[stale].latencyMs == nil ? "never measured" : "not measured for 30 s"
            return (targets[stale].lane, "route \(name) (latency): \(targets[stale].lane), \(age): a probe (\(figures(except: stale)))")
        }
        let measured = targets.indices.filter { fresh(lanes[$0]) }
        guard let fastest = measured.min(by: { lanes[$0].latencyMs! < lanes[$1].latencyMs! }) else {
            let least = targets.indices.min { lanes[$0].picked < lanes[$1].picked } ?? 0
            return (targets[least].lane, "route \(name) (latency): \(targets[least].lane), nothing measured yet: spread")
        }
        if Double.random(in: 0..<1, using: &random) < RouteConditions.exploration {
            let others = targets.indices.filter { $0 != fastest }
            let other = others[Int.random(in: 0..<others.count, using: &random)]
            return (targets[other].lane, "route \(name) (latency): \(targets[other].lane), exploring (\(figures(except: other)))")
        }
        let p50 = Self.figure(lanes[fastest].latencyMs!)
        return (targets[fastest].lane, "route \(name) (latency): \(targets[fastest].lane), p50 \(p50) ms (\(figures(except: fastest)))")
    }

    /// A target's price per million tokens (input + output) and its estimated finish.
    struct Estimate {
        var lane: String
        /// nil: no price is configured for its model.
        var price: Double?
        /// Milliseconds from now until the job would be answered.
        var finishMs: Double
    }

    /// The estimated finish: the wait for the job's turn (at `rpm`, one call per 60 s / rpm for
    /// it and every job ahead; at `concurrency`, a round of the lane's p50 per `concurrency`
    /// jobs past the free slots), then one p50 for its own call.
    func estimates(_ conditions: RouteConditions) -> [Estimate] {
        targets.map { target in
            let lane = conditions.lanes[target.lane] ?? RouteConditions.Lane()
            let limits = conditions.limits[target.provider] ?? SluiceConfiguration.Limits()
            let service = max(1, lane.latencyMs ?? RouteConditions.assumedLatencyMs)
            let ahead = Double(max(0, lane.queued)) + Double(max(0, lane.picked))
            var wait = 0.0
            if let rpm = limits.requestsPerMinute, rpm > 0 { wait = max(wait, (ahead + 1) * 60_000 / Double(rpm)) }
            if let concurrency = limits.concurrency, concurrency > 0 {
                let over = Double(max(0, lane.inFlight)) + ahead + 1 - Double(concurrency)
                if over > 0 { wait = max(wait, (over / Double(concurrency)).rounded(.up) * service) }
            }
            let price = SluiceConfiguration.Price.of(target.model ?? target.provider, in: conditions.prices).map { $0.input + $0.output }
            return Estimate(lane: target.lane, price: price, finishMs: wait + service)
        }
    }

    private func chooseCost(_ conditions: RouteConditions, deadline: Int64?) -> (lane: String, why: String) {
        let estimates = estimates(conditions)
        func price(_ estimate: Estimate) -> String { estimate.price.map { "$\(Self.figure($0))/Mtok" } ?? "no price" }
        func cheaper(_ a: Estimate, _ b: Estimate) -> Bool { (a.price ?? .infinity) < (b.price ?? .infinity) }
        func others(_ chosen: Int, _ text: (Estimate) -> String) -> String {
            estimates.indices.filter { $0 != chosen }.map { "\(estimates[$0].lane) \(text(estimates[$0]))" }.joined(separator: ", ")
        }
        func seconds(_ ms: Double) -> String { Self.figure(ms / 1000) + " s" }
        guard let deadline else {
            let best = estimates.indices.reduce(0) { cheaper(estimates[$1], estimates[$0]) ? $1 : $0 }
            return (estimates[best].lane, "route \(name) (cost): \(estimates[best].lane) at \(price(estimates[best])) (\(others(best, price)))")
        }
        let left = Double(deadline) - Double(conditions.now)  // in Double: no overflow
        let fitting = estimates.indices.filter { estimates[$0].finishMs <= left }
        if let best = fitting.reduce(nil as Int?, { best, index in best.map { cheaper(estimates[index], estimates[$0]) ? index : $0 } ?? index }) {
            let estimate = estimates[best]
            return (
                estimate.lane,
                "route \(name) (cost): \(estimate.lane) at \(price(estimate)), done in ~\(seconds(estimate.finishMs)) of \(seconds(max(0, left))) left (\(others(best, price)))"
            )
        }
        let earliest = estimates.indices.reduce(0) { estimates[$1].finishMs < estimates[$0].finishMs ? $1 : $0 }
        return (
            estimates[earliest].lane,
            "route \(name) (cost): \(estimates[earliest].lane), none fits the deadline in \(seconds(max(0, left))): the earliest, ~\(seconds(estimates[earliest].finishMs)) (\(others(earliest) { seconds($0.finishMs) }))"
        )
    }

    /// A figure for a note: whole when it is whole, else two decimals at most; beyond 1e15
    /// (only a garbage figure gets there) three significant digits, so a note stays short.
    static func figure(_ value: Double) -> String {
        guard value.isFinite else { return "?" }
        guard abs(value) < 1e15 else { return String(format: "%.3g", value) }
        if let whole = Bounded.int(value, in: -999_999_999_999_999...999_999_999_999_999) { return String(whole) }
        return String(format: "%.2f", value)
    }
}
