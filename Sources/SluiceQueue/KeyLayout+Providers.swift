extension KeyLayout {
    // A provider's keys share its prefix `sluice:{p:<provider>}:` (one hash slot): the limiter's
    // scripts get the prefix as KEYS[1] and add these same suffixes.

    /// When the provider's pause ends (Unix ms), while one runs.
    public static func providerPause(_ provider: String) -> String { providerPrefix(provider) + "pause" }
    /// The slow start's window after a pause.
    public static func providerRamp(_ provider: String) -> String { providerPrefix(provider) + "ramp" }
    /// Present while the probe call after a pause is awaited.
    public static func providerProbe(_ provider: String) -> String { providerPrefix(provider) + "probe" }
    /// The concurrency slots held, scored by when their lease ends (Unix ms).
    public static func providerSlots(_ provider: String) -> String { providerPrefix(provider) + "slots" }
    /// The limits the provider last announced in its headers (`ProviderState.Announced.fields`).
    public static func providerAnnounced(_ provider: String) -> String { providerPrefix(provider) + "announced" }
    /// The call statistics every worker adds to (`ProviderCallStats`).
    public static func providerStats(_ provider: String) -> String { providerPrefix(provider) + "stats" }
}
