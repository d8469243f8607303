import Logging
import ServiceLifecycle

/// The reaper, promoter and expirer as one ServiceLifecycle service, run in every worker
/// process. Several copies at once are safe: each move is an atomic script that checks the
/// job's state first, so no job is moved twice.
public struct QueueMaintenance: Service {
    public let queue: JobQueue
    public let logger: Logger

    /// Maintenance over every lane of `queue`, at its `maintenanceInterval`.
    public init(queue: JobQueue, logger: Logger = Logger(label: "sluice.maintenance")) {
        self.queue = queue
        self.logger = logger
    }

    /// Runs a pass over every lane each `maintenanceInterval` until shutdown or cancellation.
    /// A Redis error is logged and the next pass tries again.
    public func run() async throws {
        let interval = queue.configuration.maintenanceInterval
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let report = try await queue.maintainAll()
                    if report.total > 0 {
                        logger.debug(
                            "maintenance pass",
                            metadata: [
                                "requeued": "\(report.requeued)", "dead": "\(report.dead)",
                                "promoted": "\(report.promoted)", "expired": "\(report.expired)",
                                "cancelled": "\(report.cancelled)",
                            ])
                    }
                } catch {
                    logger.warning("maintenance pass failed", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
