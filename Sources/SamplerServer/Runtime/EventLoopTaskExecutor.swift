import NIOCore
import NIOPosix

/// Runs Swift tasks on one NIO event loop (SE-0417 task executor): the gRPC server's request
/// handling, started under this preference, stays on the thread that reads and writes its
/// connections instead of hopping to Swift's cooperative pool and back for every call.
final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    let loop: any EventLoop

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
