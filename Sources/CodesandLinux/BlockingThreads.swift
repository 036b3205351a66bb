import CSandbox
import Foundation
import Synchronization

/// Long-lived threads for the backend's blocking work (a run's supervisor blocks in poll(), a
/// prepare waits for its sandbox's setup), which must not starve Swift's cooperative pool.
///
/// Why not a new thread per job: a run and its slot's prepare would each start one (clone, stack
/// mapping, Foundation's bookkeeping: tens of microseconds of CPU, and the start is on the run's
/// path). A thread here serves one job at a time and then waits for the next; there are never more
/// than the most jobs that ran at once (about two per slot).
final class BlockingThreads: Sendable {
    static let shared = BlockingThreads()

    /// One thread: the job it runs next, handed over before `wake` is signalled.
    private final class Worker: @unchecked Sendable {
        let wake = DispatchSemaphore(value: 0)
        var job: (@Sendable () -> Void)?
        var name = ""
    }

    private let idle = Mutex<[Worker]>([])

    /// Runs `job` on an idle thread, or on a new one when all are busy. `name` (15 bytes at most
    /// reach the kernel) shows in ps and perf while the job runs.
    func run(_ name: String, _ job: @escaping @Sendable () -> Void) {
        if let worker = idle.withLock({ $0.popLast() }) {
            (worker.job, worker.name) = (job, name)
            worker.wake.signal()
            return
        }
        let worker = Worker()
        (worker.job, worker.name) = (job, name)
        Thread { [self] in serve(worker) }.start()
    }

    private func serve(_ worker: Worker) -> Never {
        while true {
            cs_set_thread_name(worker.name)
            let job = worker.job
            worker.job = nil
            job?()
            cs_set_thread_name("codesand-idle")
            idle.withLock { $0.append(worker) }
            worker.wake.wait()
        }
    }
}

/// Runs blocking work on one of the backend's threads and awaits its result.
func onThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
        BlockingThreads.shared.run(name) { c.resume(with: Result { try body() }) }
    }
}
