import Hummingbird
import SluiceCore
import SluiceQueue

/// The synchronous facade's routes and what they use: `POST /v1/chat/completions`,
/// `/v1/embeddings` and `/v1/messages` (the handlers are in FacadeRoutes.swift).
struct FacadeController: Sendable {
    let queue: JobQueue
    let waiter: JobWaiter
    /// The key's lanes, priorities, rate and parked waits, as for any submit.
    let admission: KeyAdmission
    /// The configured providers and routes, which a request's `model` names.
    let providers: [String: SluiceConfiguration.Provider]
    let routes: [String: SluiceConfiguration.Route]
    /// How long a call waits for its job by default, and at most (`X-Sluice-Wait`).
    let facadeWait: Duration
    let facadeMaxWait: Duration
    /// Serves a call in this process when it can (nil: always queued for the workers).
    let inline: (any InlineCaller)?
}
