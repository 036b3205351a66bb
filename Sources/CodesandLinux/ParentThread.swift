import Foundation
import CSandbox

/// The one thread that starts every sandbox init and zygote, for the daemon's whole life.
///
/// Why: each init asks the kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG), so that no
/// sandbox outlives a killed or crashed daemon (its death as the pid namespace's init takes every
/// process of the sandbox along). But the kernel's "parent" is the *thread* that cloned it: an init
/// cloned by a short-lived prepare thread would be killed when that thread ends. Cloned from here,
/// the parent is a thread that ends only with the daemon. Zygotes are started from here too: the
/// inits they clone with CLONE_PARENT get the zygote's parent thread, this one.
final class ParentThread: @unchecked Sendable {  // `pending` is guarded by `condition`
    static let shared = ParentThread()

    private let condition = NSCondition()
    private var pending: [() -> Void] = []

    private init() {
        let thread = Thread { [self] in serve() }
        thread.name = "codesand-parent"
        thread.start()
    }

    /// Runs `body` on the parent thread and returns its result; the caller waits. Bodies run one at a
    /// time, so each must be short (a clone or a posix_spawn, not the wait for a sandbox's setup).
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let result = ResultBox<T>()
        condition.lock()
        pending.append {
            result.value = body()
            result.done.signal()
        }
        condition.signal()
        condition.unlock()
        result.done.wait()
        return result.value!
    }

    private func serve() -> Never {
        cs_set_thread_name("codesand-parent")  // Thread.name does not reach the kernel's comm here
        // Every init and zygote is this thread's child, and the kernel sends their SIGCHLD to this
        // thread's process as seen from this thread: blocked here (as the daemon's threads start
        // with nearly every signal blocked), it is queued and woke the daemon's main thread, the one
        // thread that takes signals, once per sandbox. Unblocked, SIGCHLD's default (ignore) drops
        // it at once; the exits are reaped by wait4, which does not need the signal.
        var chld = sigset_t()
        sigemptyset(&chld)
        sigaddset(&chld, SIGCHLD)
        pthread_sigmask(SIG_UNBLOCK, &chld, nil)
        while true {
            condition.lock()
            while pending.isEmpty { condition.wait() }
            let work = pending
            pending.removeAll()
            condition.unlock()
            for w in work { w() }
        }
    }
}

/// The result of one body: written by the parent thread before `done` is signalled, read after.
private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
    let done = DispatchSemaphore(value: 0)
}

/// A value handed to the parent thread while its owner waits for the result (a pointer to a spec
/// on the caller's stack, which outlives the call).
struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
