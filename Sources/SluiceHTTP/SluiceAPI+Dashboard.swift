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
        /// How often a live page (the overview, scaling, providers) fetches its figures again.
        public var refresh: Duration = .seconds(2)
        /// Failed logins allowed from one address a minute, past which its logins wait for the minute's end.
        public var loginAttemptsPerMinute = DashboardSessions.defaultFailedLoginsPerMinute

        public init() {}

        /// The settings of the configuration's `dashboard:`.
        public init(_ dashboard: SluiceConfiguration.Dashboard) {
            enabled = dashboard.enabled
            sessionLifetime = dashboard.sessionTTL
            trustForwardedProto = dashboard.trustForwardedProto
            refresh = dashboard.refresh
            loginAttemptsPerMinute = dashboard.loginAttemptsPerMinute
        }
    }
}
