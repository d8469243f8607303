import HTTPTypes
import Hummingbird
import SluiceCore
import Synchronization

/// What a key may put in the queue besides its rate and cap (`admit`): only lanes a configured
/// provider serves (and, when the key names some, only those), and priorities up to the key's
/// `max_priority`, so that one tenant cannot park jobs on a lane nobody serves or jump every
/// other tenant's queue with a priority-100 flood.
extension SluiceAPI {
    /// Checks every job of a submit (one, a bulk, a batch): 400 naming the lane when no
    /// configured provider serves it or its model name is unsafe, 403 when the key may not use
    /// that lane or priority. A bulk's error names the line (`jobs[i]`).
    /// The facade's own top priority is not the client's choice: it skips the priority check
    /// (`ownPriority`).
    func checkJobs(_ specs: [JobSpec], key: APIKey, ownPriority: Bool = false) throws {
        let directory = ModelDirectory(providers: providers, routes: routes)
        let admin = key.scopes.contains(.admin)
        var checked: Set<String> = []
        for (index, spec) in specs.enumerated() {
            let place = specs.count > 1 ? "jobs[\(index)]: " : ""
            if checked.insert(spec.lane).inserted { try checkLane(spec.lane, key: key, place: place, directory: directory) }
            let most = key.limits.maxPriority ?? 0
            if !admin, !ownPriority, spec.priority > most {
                throw APIError(
                    .forbidden, type: "permission",
                    message: place + "priority \(spec.priority) is above this key's max_priority of \(most)", param: "priority")
            }
        }
    }

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
