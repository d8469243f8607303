import SluiceCore

extension RedisConfiguration {
    /// The Redis settings of a loaded configuration, for `url`.
    public init(url: String, settings: SluiceConfiguration.Redis) throws {
        try self.init(url: url)
        connectTimeout = settings.connectTimeout
        commandTimeout = settings.commandTimeout
    }
}
