import SluiceCore
import SluiceHTTP
import SluiceQueue
import SluiceScaler
import SluiceStore
import SluiceWebhooks

extension SluiceAPI {
    /// The API over `queue` and `keys`' database, wired as `sluice serve` wires it (the archive
    /// and the webhook store on the same database and Redis), for tests.
    static func testing(
        queue: JobQueue, waiter: JobWaiter, keys: APIKeyStore, addressGuard: AddressGuard = AddressGuard(),
        scaling: ScalingMonitor? = nil, settings: Settings = Settings()
    ) -> SluiceAPI {
        SluiceAPI(
            services: Services(
                queue: queue, waiter: waiter, keys: keys, archive: ArchiveStore(database: keys.database),
                webhooks: WebhookStore(redis: queue.redis, retention: queue.configuration.resultTTL), addressGuard: addressGuard,
                scaling: scaling),
            settings: settings)
    }
}
