/// Which lane serves a request's `model`, for the calls that name only a model (the synchronous
/// facade, batch lines). In order:
/// 1. a configured route of that name: one of its targets (by weight), with the route recorded
///    so the job can fall back along it;
/// 2. `provider/model`, naming a configured provider: that lane;
/// 3. a bare model listed in a provider's `models`: lane `provider/model` (the first provider,
///    by name, that lists it).
public struct ModelDirectory: Sendable {
    public let providers: [String: SluiceConfiguration.Provider]
    public let routes: [String: SluiceConfiguration.Route]

    public init(providers: [String: SluiceConfiguration.Provider], routes: [String: SluiceConfiguration.Route]) {
        self.providers = providers
        self.routes = routes
    }

    public struct Resolution: Sendable, Hashable {
        public var lane: String
        /// The route the model named, if it named one.
        public var route: String?
        /// The kind (API) of the provider serving the lane.
        public var kind: String
    }

    public func resolve(_ model: String) -> Resolution? {
        if let route = routes[model] {
            var random = SystemRandomNumberGenerator()
            let lane = route.pick(using: &random)
            return Resolution(lane: lane, route: route.name, kind: kind(of: lane))
        }
        if let slash = model.firstIndex(of: "/"), let provider = providers[String(model[..<slash])] {
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

    /// What to say when a model resolves to nothing.
    public static func unknown(_ model: String) -> String {
        "no route or provider serves model '\(model)'; name a configured route, provider/model, or a model a provider lists in its models"
    }
}
