import SluiceCore

extension QueueConfiguration {
    /// The queue settings of a loaded configuration.
    public init(_ configuration: SluiceConfiguration.Queue) {
        self.init(
            leaseDuration: configuration.leaseDuration, retryPolicy: configuration.retry,
            resultTTL: configuration.resultTTL, idempotencyTTL: configuration.idempotencyTTL,
            eventStreamCap: configuration.eventStreamCap, eventStreamMax: configuration.eventStreamMax,
            maintenanceInterval: configuration.maintenanceInterval)
    }
}
