import NIOCore
import NIOPosix

/// Runs tasks on a NIO event loop: a lane worker's calls run on the loop that carries their
/// provider connections, so the call, its HTTP write and the answer's continuation stay on one
/// thread instead of hopping between the cooperative pool and the event loop (two thread
/// wake-ups a call, which profiling showed as the largest single cost end to end).
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: `eventLoop` is immutable and thread-safe (NIO's EventLoop is Sendable).
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }

    /// One executor per loop of NIO's shared group (the one provider connections use).
    static let shared: [EventLoopTaskExecutor] = MultiThreadedEventLoopGroup.singleton.makeIterator().map(EventLoopTaskExecutor.init)
}
