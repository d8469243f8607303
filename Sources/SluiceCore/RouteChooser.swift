/// What a route choice reads; the web process's route board keeps one fresh and counts its own
/// choices between reads (`choose` is one step, so concurrent submits do not all take the same
/// target from the same figures).
public protocol RouteChooser: Sendable {
    /// The target of `route` for a job with `deadline` (Unix ms), and why.
    func choose(_ route: SluiceConfiguration.Route, deadline: Int64?) -> (lane: String, why: String)
}
