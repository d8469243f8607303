import SluiceCore

extension SluiceAPI {
    /// The dashboard's settings (`/ui`; see `DashboardController`).
    public struct DashboardSettings: Sendable {
        /// Whether `/ui` is served at all.
        public var enabled = true
        /// How long a login lasts.
        public var sessionLifetime: Duration = .seconds(8 * 3600)
        /// Whether `X-Forwarded-Proto: https` is believed, making the session cookie `Secure`. Set it
        /// only behind a proxy that terminates TLS and overwrites the header: a client could send it.
        public var trustForwardedProto = false

        public init() {}
    }
}
