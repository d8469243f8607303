import HTTPTypes
import Hummingbird
import SluiceCore
import Synchronization

/// What a key may put in the queue besides its rate and cap (`admit`): only lanes a configured
/// provider serves (and, when the key names some, only those), and priorities up to the key's
/// `max_priority`, so that one tenant cannot park jobs on a lane nobody serves or jump every
/// other tenant's queue with a priority-100 flood.
extension KeyAdmission {
    /// Checks every job of a submit (one, a bulk, a batch): 400 naming the lane when no
    /// configured provider serves it or its model name is unsafe, 403 when the key may not use
    /// that lane or priority. A bulk's error names the line (`jobs[i]`).
    /// The facade's own top priority is not the client's choice: it skips the priority check
    /// (`ownPriority`).
    ///
    /// Lanes the configuration does not name (`provider/any-model`) are capped per provider
    /// (`maxAdHocLanes`): every lane gets a worker and costs maintenance for good, so a bulk of
    /// 50,000 made-up model names must not become 50,000 lanes.
    func checkJobs(_ specs: [JobSpec], key: APIKey, ownPriority: Bool = false) async throws {
        let directory = ModelDirectory(providers: providers, routes: routes)
        let admin = key.scopes.contains(.admin)
        var checked: Set<String> = []
        var adHoc: [String: String] = [:]  // a lane the configuration does not name -> where it was first seen
        for (index, spec) in specs.enumerated() {
            let place = specs.count > 1 ? "jobs[\(index)]: " : ""
            if checked.insert(spec.lane).inserted {
                try checkLane(spec.lane, key: key, place: place, directory: directory)
                // A route's job may move to any of its targets: a key limited to some lanes must be allowed them all.
                if !admin, key.limits.lanes != nil, let route = spec.route.flatMap({ routes[$0] }) {
                    // Its canary's lane too: a pick may go there.
                    for lane in route.targets.map(\.lane) + [route.canary?.lane].compactMap({ $0 }) where lane != spec.lane {
                        try checkLane(lane, key: key, place: place + "route '\(route.name)': ", directory: directory)
                    }
                }
                if !configuredLanes.contains(spec.lane) { adHoc[spec.lane] = place }
            }
            let most = key.limits.maxPriority ?? 0
            if !admin, !ownPriority, spec.priority > most {
                throw APIError(
                    .forbidden, type: "permission",
                    message: place + "priority \(spec.priority) is above this key's max_priority of \(most)", param: "priority")
            }
        }
        if !adHoc.isEmpty { try await checkAdHocLanes(adHoc) }
    }

    /// The response cache's settings for a submit by `key`: the config's, with the key's own
    /// setting (through `/v1/keys`, else the config's `cache.keys` entry for it) as the layer
    /// between the route's and the job's (`ResponseCacheSettings.policy`).
    func cache(for key: APIKey) -> ResponseCacheSettings { cache.forKey(prefix: key.prefix, own: key.cache) }

    /// Lanes named by the configuration: each provider, route targets, and the models providers list.
    static func configuredLanes(providers: [String: SluiceConfiguration.Provider], routes: [String: SluiceConfiguration.Route]) -> Set<String> {
        var lanes = Set(providers.keys)
        for provider in providers.values { for model in provider.models { lanes.insert(provider.name + "/" + model) } }
        for route in routes.values {
            for target in route.targets { lanes.insert(target.lane) }
            if let canary = route.canary { lanes.insert(canary.lane) }
        }
        return lanes
    }

    /// Refuses lanes that would take a provider past `maxAdHocLanes` lanes the configuration
    /// does not name (the lanes already in Redis count, read at most once a second).
    func checkAdHocLanes(_ lanes: [String: String]) async throws {
        var known = knownLanes.cached()
        if lanes.keys.contains(where: { !(known?.contains($0) ?? false) }) {
            known = Set(try await queue.lanes())
            knownLanes.store(known!)
        }
        let fresh = lanes.keys.filter { !known!.contains($0) }
        guard !fresh.isEmpty else { return }
        func provider(_ lane: String) -> Substring { lane.split(separator: "/", maxSplits: 1).first ?? Substring(lane) }
        var counts: [Substring: Int] = [:]
        for lane in known! where !configuredLanes.contains(lane) { counts[provider(lane), default: 0] += 1 }
        for lane in fresh.sorted() {
            let name = provider(lane)
            counts[name, default: 0] += 1
            if counts[name, default: 0] > maxAdHocLanes {
                var error = APIError(
                    .tooManyRequests, type: "too_many_lanes",
                    message: (lanes[lane] ?? "") + "provider '\(name)' already has \(maxAdHocLanes) lanes for models the configuration does not list; "
                        + "use one of its lanes, list the model in the provider's models, or route it", param: "lane")
                error.headers[.retryAfter] = "60"
                throw error
            }
        }
    }

    /// The one resolver from a job's model, route or provider to its lane, over the configured
    /// providers and routes.
    var directory: ModelDirectory { ModelDirectory(providers: providers, routes: routes, chooser: chooser) }

    /// Checks one lane: a configured provider serves it, its model name is safe, and the key may
    /// use it.
    func checkLane(_ lane: String, key: APIKey, place: String, directory: ModelDirectory? = nil) throws {
        let directory = directory ?? ModelDirectory(providers: providers, routes: routes)
        if let problem = directory.laneProblem(lane) {
            throw APIError(.badRequest, type: "invalid_lane", message: place + "lane refused: " + problem, param: "lane")
        }
        if !key.scopes.contains(.admin), let allowed = key.limits.lanes, !KeyLimits.allows(allowed, lane: lane) {
            throw APIError(
                .forbidden, type: "permission",
                message: place + "this key may submit only to \(allowed.joined(separator: ", "))", param: "lane")
        }
    }

    /// Runs `wait` (a long-poll, a facade wait) counted against the key's parked waits: past
    /// `maxParkedPerKey` at once, 429 instead, so one tenant cannot hold every connection and
    /// waiter slot of the process.
    func parked<T>(_ key: APIKey, _ wait: () async throws -> T) async throws -> T {
        let admitted = parkedWaits.counts.withLock { counts -> Bool in
            let now = counts[key.id, default: 0]
            guard now < maxParkedPerKey else { return false }
            counts[key.id] = now + 1
            return true
        }
        guard admitted else {
            var error = APIError(
                .tooManyRequests, type: "too_many_waits",
                message: "this key already has \(maxParkedPerKey) requests waiting for jobs; wait for some to finish, or poll without wait")
            error.headers[.retryAfter] = "1"
            throw error
        }
        defer {
            parkedWaits.counts.withLock { counts in
                let left = counts[key.id, default: 1] - 1
                counts[key.id] = left > 0 ? left : nil
            }
        }
        return try await wait()
    }
}

/// Waits parked per key (long-polls and facade calls), shared by every copy of the API value.
final class ParkedWaits: Sendable {
    let counts = Mutex<[Int64: Int]>([:])
}

/// The lanes Redis knows, as read at most once a second (for the ad-hoc lane cap).
final class KnownLanes: Sendable {
    private let state = Mutex<(lanes: Set<String>, at: ContinuousClock.Instant)?>(nil)

    func cached() -> Set<String>? {
        state.withLock { state in
            guard let state, ContinuousClock.now - state.at < .seconds(1) else { return nil }
            return state.lanes
        }
    }

    func store(_ lanes: Set<String>) { state.withLock { $0 = (lanes, ContinuousClock.now) } }
}
