/// The one resolver from what a job names (a lane, a provider and model, or a model alone) to the
/// lane that serves it, used by submit, bulk, the synchronous facade and batches alike.
///
/// A model alone resolves, in order:
/// 1. a configured route of that name: the target its strategy chooses (RouteChoice.swift; by
///    `chooser`, the web process's route board, when there is one, so that what is measured
///    counts), with the route recorded so the job can fall back along it, and why in `why`;
/// 2. `provider/model`, naming a configured provider: that lane;
/// 3. a bare model listed in a provider's `models`: lane `provider/model` (the first provider,
///    by name, that lists it).
///
/// A lane, or a provider (and model), named directly is taken as named: whether a configured
/// provider serves it is admission's question (`laneProblem`).
public struct ModelDirectory: Sendable {
    public let providers: [String: SluiceConfiguration.Provider]
    public let routes: [String: SluiceConfiguration.Route]
    /// Chooses a route's target from what is measured (the route board); nil: from the
    /// configured limits alone, as if every lane were idle and never measured.
    public let chooser: (any RouteChooser)?
    /// Whether any provider has a batch API (`providerBatch` answers no at once otherwise: the
    /// submit path of a config without one pays nothing per job).
    public let anyProviderBatch: Bool

    public init(
        providers: [String: SluiceConfiguration.Provider], routes: [String: SluiceConfiguration.Route], chooser: (any RouteChooser)? = nil
    ) {
        self.providers = providers
        self.routes = routes
        self.chooser = chooser
        anyProviderBatch = providers.values.contains { $0.batchAPI != nil }
    }

    public struct Resolution: Sendable, Hashable {
        public var lane: String
        /// The route the model named, if it named one.
        public var route: String?
        /// The kind (API) of the provider serving the lane.
        public var kind: String
        /// Why this lane, when a route chose it: the note for the job's first timeline entry
        /// (`JobSpec.why`).
        public var why: String? = nil
    }

    /// What a job names as where it runs.
    public enum Target: Sendable, Hashable {
        /// `lane`: a lane, as named.
        case lane(String)
        /// `provider`, and maybe `model`: the lane `provider` or `provider/model`.
        case provider(String, model: String?)
        /// `model` alone: a route, `provider/model`, or a model a provider lists.
        case model(String)
    }

    /// The lane `target` runs on, and the route it went through; nil for a model nothing serves.
    /// `deadline` (Unix ms) is the job's, for a route choosing by cost.
    public func lane(for target: Target, deadline: Int64? = nil) -> (lane: String, route: String?, why: String?)? {
        switch target {
        case .lane(let lane): (lane, nil, nil)
        case .provider(let provider, let model?): (provider + "/" + model, nil, nil)
        case .provider(let provider, nil): (provider, nil, nil)
        case .model(let model): resolve(model, deadline: deadline).map { ($0.lane, $0.route, $0.why) }
        }
    }

    /// The lane that serves `model` alone, its route (and why the route chose that lane), and
    /// its provider's kind. `deadline` (Unix ms) is the job's, for a route choosing by cost.
    public func resolve(_ model: String, deadline: Int64? = nil) -> Resolution? {
        if let route = routes[model] {
            let choice: (lane: String, why: String)
            if let chooser {
                choice = chooser.choose(route, deadline: deadline)
            } else {
                var random = SystemRandomNumberGenerator()
                // Weighted and fallback read no conditions: no copy of the limits for them.
                let conditions =
                    route.strategy.measured
                    ? RouteConditions(limits: providers.mapValues(\.limits), now: UnixMillis.current().value) : RouteConditions()
                choice = route.choose(conditions: conditions, deadline: deadline, random: &random)
            }
            return Resolution(lane: choice.lane, route: route.name, kind: kind(of: choice.lane), why: choice.why)
        }
        if let slash = model.firstIndex(of: "/"), let provider = providers[String(model[..<slash])] {
            // The model part reaches a URL path: a name like `../../admin` is no model.
            guard Self.modelProblem(String(model[model.index(after: slash)...])) == nil else { return nil }
            return Resolution(lane: model, route: nil, kind: provider.kind)
        }
        if let provider = providers.values.sorted(by: { $0.name < $1.name }).first(where: { $0.models.contains(model) }) {
            return Resolution(lane: provider.name + "/" + model, route: nil, kind: provider.kind)
        }
        return nil
    }

    private func kind(of lane: String) -> String {
        providers[String(lane.split(separator: "/", maxSplits: 1)[0])]?.kind ?? "openai"
    }

    /// Why `lane`, named directly by a client (`provider` or `provider/model`), cannot be served;
    /// nil when a configured provider serves it and its model name is safe to put in a URL. Only
    /// such lanes are queued: a job for a lane nobody serves would wait for ever, and its lane
    /// would cost maintenance and listing work from then on.
    public func laneProblem(_ lane: String) -> String? {
        let parts = lane.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let provider = String(parts[0])
        guard providers[provider] != nil else {
            let known = providers.keys.sorted().joined(separator: ", ")
            // What to do: the nearest provider's name when it looks like a typo, else how to add one.
            let guess = SettingSuggestion.nearest(to: provider, among: providers.keys).map { "; did you mean '\($0)'?" }
            return "no provider named '\(Self.printable(provider))' is configured"
                + (known.isEmpty ? "" : " (the providers are \(known))")
                + (guess ?? "; a lane is a provider or provider/model: add the provider under providers: in the configuration file and restart")
        }
        if parts.count == 2, let problem = Self.modelProblem(String(parts[1])) { return problem }
        return nil
    }

    /// The longest model name accepted in a lane.
    public static let maxModelLength = 200

    /// Why `model` is not a name a provider's URL may carry; nil when it is fine: 1-200 bytes of
    /// letters, digits and `-._:@+=` in `/`-separated segments, none empty, `.` or `..` (so a
    /// lane's model can never climb out of the provider's path, carry a query or a control byte).
    public static func modelProblem(_ model: String) -> String? {
        guard !model.isEmpty, model.utf8.count <= maxModelLength else {
            return "the model name must be 1-\(maxModelLength) characters"
        }
        for segment in model.split(separator: "/", omittingEmptySubsequences: false) {
            guard !segment.isEmpty, segment != ".", segment != ".." else {
                return "the model name '\(printable(model))' has an empty, '.' or '..' path segment"
            }
            let allowed = segment.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"):
                    true
                default: "-._:@+=".utf8.contains(byte)
                }
            }
            guard allowed else {
                return "the model name '\(printable(model))' may hold only letters, digits, '/' and -._:@+="
            }
        }
        return nil
    }

    /// A name as it may be echoed in an error: control bytes replaced, at most 80 characters.
    public static func printable(_ text: String) -> String {
        let cleaned = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
        return cleaned.count > 80 ? String(cleaned.prefix(80)) + "…" : cleaned
    }

    /// What to say when a model resolves to nothing.
    public static func unknown(_ model: String) -> String {
        "no route or provider serves model '\(model)'; name a configured route, provider/model, or a model a provider lists in its models"
    }
}
