import NIOCore

/// Runs a task's jobs on one event loop: a task that prefers it does its channel I/O on the loop
/// itself, and resumes there when a future of that loop completes, without waking another thread.
///
/// The daemon runs each request's task on the loop of its connection. Why: a request otherwise
/// crosses the event loop, one of Swift's pool threads (its task), the run's thread, a pool thread
/// again and the event loop for the reply; each hand-over to another thread is a wake-up, tens of
/// microseconds on a small VM. With this preference the request is decoded, scheduled and answered
/// on the loop that read it, and only the run itself (a supervisor that blocks in poll) leaves it.
/// Used there only with a backend whose runs never block their caller
/// (SandboxBackend.neverBlocksItsCaller: the native one, whose waits are on its own threads); lines
/// over 64 KiB are parsed on a thread of their own (LongLineParser), and `status` and
/// `pool.reload` go to Swift's pool (Dispatcher). The client (CodesandClient.taskExecutor) offers
/// the same to callers whose work between calls is short.
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {  // immutable
    private let loop: any EventLoop

    public init(_ loop: any EventLoop) { self.loop = loop }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
