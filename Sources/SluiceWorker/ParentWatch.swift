import Foundation
import Logging
import ServiceLifecycle

/// Stops a supervised worker process gracefully once its supervisor is gone: when `parent` is no
/// longer this process's parent (it died, even by SIGKILL, and the process was handed to init),
/// it sends this process SIGTERM, the signal the service group drains on.
public struct ParentWatch: Service {
    let parent: pid_t
    let logger: Logger

    public init(parent: pid_t, logger: Logger) {
        self.parent = parent
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            if getppid() != parent {
                logger.info("the supervisor is gone; stopping", metadata: ["supervisor_pid": "\(parent)"])
                kill(getpid(), SIGTERM)
                // Returning now would cancel the group instead of stopping it gracefully.
                try? await gracefulShutdown()
                return
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}
