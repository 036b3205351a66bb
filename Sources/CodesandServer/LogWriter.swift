import Glibc
import Synchronization

/// Log lines go to stderr from a thread of their own. Whoever logs (the event loop that answers
/// requests, a run's thread) only queues the line: a stderr that takes nothing (a stalled journald,
/// a pipe its reader stopped reading) must not stop the daemon from answering. The queue holds up
/// to `maxQueuedBytes` (1 MiB for the daemon's); past that, lines are dropped and counted, and once stderr takes lines
/// again a warning says how many were lost.
public final class LogWriter: Sendable {
    /// codesandd's stderr.
    public static let shared = LogWriter(fd: 2)

    private struct Queue {
        var lines: [[UInt8]] = []
        var bytes = 0
        var dropped = 0
        var writing = false  // the writer holds lines taken off the queue, or lingers after writing them
        var wakePending = false  // the writer was woken and has not found the queue empty since
        var started = false
    }
    private let fd: Int32
    private let maxQueuedBytes: Int
    private let queue = Mutex(Queue())
    /// Wakes the writer: one count per wake-up wanted (extra counts only cost a loop).
    private let wake = UnsafeSemaphore()

    public init(fd: Int32, maxQueuedBytes: Int = 1 << 20) {
        self.fd = fd
        self.maxQueuedBytes = maxQueuedBytes
    }

    /// Queues `line` (a whole line, with its newline), or counts it dropped when the queue is full.
    /// An `urgent` line (a warning or worse: perhaps the last before a crash) ends the writer's
    /// linger at once.
    public func write(_ line: [UInt8], urgent: Bool = false) {
        let (startNow, wakeNow) = queue.withLock { q -> (Bool, Bool) in
            if q.bytes + line.count > maxQueuedBytes {
                q.dropped += 1
            } else {
                q.lines.append(line)
                q.bytes += line.count
            }
            defer { q.started = true; q.wakePending = true }
            return (!q.started, !q.wakePending)  // one wake-up per batch, not per line
        }
        if startNow && !startWriter() {
            queue.withLock { $0.started = false }  // no thread (EAGAIN): the next line tries again
        }
        if wakeNow || urgent { wake.signal() }
    }

    /// Waits up to `timeoutMs` for the queue to be written (the daemon's last lines at its exit).
    public func flush(timeoutMs: Int) {
        wake.signal()  // a lingering writer writes now
        for _ in 0..<max(1, timeoutMs) {
            if queue.withLock({ $0.lines.isEmpty && $0.dropped == 0 && !$0.writing }) { return }
            usleep(1000)
        }
    }

    private func startWriter() -> Bool {
        var thread = pthread_t()
        let box = Unmanaged.passRetained(self)
        let made = pthread_create(&thread, nil, { raw in
            let writer = Unmanaged<LogWriter>.fromOpaque(raw!).takeRetainedValue()
            writer.serve()
        }, box.toOpaque())
        if made == 0 { pthread_detach(thread) } else { box.release() }
        return made == 0
    }

    /// How long the writer lingers after a write before it looks at the queue again, the wake-up
    /// bit left set: the lines of a busy moment (one per run, hundreds a second) then go out in one
    /// write(2) after one timer wake-up, not one thread wake-up and write each. An urgent line or a
    /// flush ends the linger.
    static let lingerMilliseconds = 10

    private func serve() -> Never {
        while true {
            wake.wait()
            while writeBatch() { wake.wait(timeoutMs: Self.lingerMilliseconds) }
        }
    }

    /// Writes every queued line in one buffer; false when there was none (the writer goes back to
    /// waiting, and the next line wakes it).
    private func writeBatch() -> Bool {
        let (lines, dropped) = queue.withLock { q -> ([[UInt8]], Int) in
            if q.lines.isEmpty && q.dropped == 0 {
                q.writing = false
                q.wakePending = false
                return ([], 0)
            }
            defer { q.lines = []; q.bytes = 0; q.dropped = 0; q.writing = true }
            return (q.lines, q.dropped)
        }
        if lines.isEmpty && dropped == 0 { return false }
        var batch: [UInt8] = []
        batch.reserveCapacity(lines.reduce(0) { $0 + $1.count } + 80)
        for line in lines { batch += line }
        if dropped > 0 {
            batch += Array("<4>warning \(dropped) log lines dropped: stderr did not take them\n".utf8)
        }
        writeAll(batch)
        return true
    }

    /// Whole lines; a partial write is continued, EINTR retried, other errors drop the rest.
    private func writeAll(_ line: [UInt8]) {
        line.withUnsafeBytes { buf in
            var done = 0
            while done < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + done, buf.count - done)
                if n > 0 { done += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }
}

/// A POSIX semaphore (counting; wait blocks the calling thread only).
final class UnsafeSemaphore: @unchecked Sendable {  // sem_t is made for sharing between threads
    private let sem = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    init() { sem_init(sem, 0, 0) }
    deinit { sem_destroy(sem); sem.deallocate() }
    func signal() { sem_post(sem) }
    func wait() { while sem_wait(sem) != 0 && errno == EINTR {} }
    /// Waits for a signal or `timeoutMs`, whichever comes first.
    func wait(timeoutMs: Int) {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let ns = Int(deadline.tv_nsec) + timeoutMs * 1_000_000
        deadline.tv_sec += ns / 1_000_000_000
        deadline.tv_nsec = ns % 1_000_000_000
        while sem_timedwait(sem, &deadline) != 0 && errno == EINTR {}
    }
}
