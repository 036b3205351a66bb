import CodesandCore
import CodesandProtocol
import NIOCore
import NIOWebSocket
#if canImport(Glibc)
import Glibc
#endif

/// Runs one exec (a compile stage or the program) in a ready container and supervises it with an
/// LXDStageMachine: stdin goes out, stdout and stderr come in over the exec websockets while the
/// caps hold; the operation's `/wait` gives the exit; the run control (the host cgroup, or LXD's
/// API for a remote LXD) gives the CPU time and kills.
struct LXDStageRunner: Sendable {
    let client: LXDClient
    let container: String
    let cgroup: any LXDRunControl
    let command: LXDExecCommand
    let limits: LimitSet
    let stdin: [UInt8]
    let streamer: OutputStreamer?
    /// An exec already started (a pre-started launcher, LXDPrestart) to supervise instead of
    /// starting `command`: `stdin` then begins with its hand-over.
    var started: LXDPrestarted? = nil

    func run() async throws -> StageOutcome {
        let before = await cgroup.beginStage()
        let session: LXDExecSession
        if let started { session = started.session } else {
            session = try await LXDExecSession.start(client, instance: container, command: command)
        }
        defer { session.close() }
        var machine = LXDStageMachine(limits: limits, streams: streamer != nil, now: monotonicNs())
        let (events, sink) = AsyncStream.makeStream(of: LXDStageMachine.Event.self)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await Self.feed(stdin, to: session.stdin) }
            let cap = Int(clamping: limits.outputBytes)
            group.addTask { await Self.read(session.stdout, as: .stdout, cap: cap, into: sink) }
            group.addTask { await Self.read(session.stderr, as: .stderr, cap: cap, into: sink) }
            group.addTask { await Self.drain(session.control) }
            group.addTask { [client, limits, started] in
                if let started {  // its exit has been watched since it started
                    let status = await withTaskCancellationHandler { await started.exit.value } onCancel: { started.exit.cancel() }
                    sink.yield(.exited(waitStatus: status))
                    return
                }
                let timeout = Duration.milliseconds(limits.wallMs) + .seconds(30)
                if let result = try? await client.wait(session.operation, timeout: timeout),
                   case .int(let r) = result.metadata.objectValue?["return"] {
                    sink.yield(.exited(waitStatus: LXDExecSession.waitStatus(fromReturn: r)))
                } else {
                    sink.yield(.exited(waitStatus: 9))  // the operation is gone: its command with it
                }
            }
            group.addTask {
                // The clock's turns: the machine says when it must look at the time next.
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(10))
                    sink.yield(.tick)
                }
            }
            await withTaskCancellationHandler {
                for await event in events {
                    if await perform(machine.handle(event, now: monotonicNs()), sink: sink) { break }
                }
            } onCancel: {
                sink.yield(.clientGone)
            }
            if !machine.isFinished {  // the request was cancelled: what the run produced so far
                _ = machine.handle(.clientGone, now: monotonicNs())
                await cgroup.killExec()
            }
            sink.finish()
            session.close()
            group.cancelAll()
        }
        streamer?.finish()
        let after = await cgroup.endStage()
        return machine.outcome(cpuNs: after.cpuNs &- before.cpuNs, oomKilled: after.oomKills > before.oomKills,
                               memoryPeakBytes: after.memoryPeakBytes, now: monotonicNs())
    }

    /// Does what the machine answered; true when the stage is over.
    private func perform(_ actions: [LXDStageMachine.Action], sink: AsyncStream<LXDStageMachine.Event>.Continuation) async -> Bool {
        var over = false
        for action in actions {
            switch action {
            case .forward(let stream, let bytes):
                bytes.withUnsafeBytes { streamer?.feed($0, from: stream) }
            case .sampleCPU:
                let sample = await cgroup.sample()
                sink.yield(.cpuSample(usedNs: sample.cpuNs))
                if sample.mainExited { sink.yield(.mainExited) }
            case .kill:
                await cgroup.killExec()
            case .killLeftovers:
                await cgroup.killLeftovers()
            case .finish:
                over = true
            }
        }
        return over
    }

    /// Sends stdin, then its end (an empty text frame); then waits for LXD to close the socket.
    private static func feed(_ bytes: [UInt8], to ws: LXDWebSocket) async {
        try? await ws.channel.executeThenClose { inbound, outbound in
            try await ws.send(bytes, writer: outbound)
            try await outbound.write(LXDWebSocket.endFrame())
            for try await _ in inbound {}
        }
    }

    /// Passes a stream's frames on as output events, then its end. Reading stops once the stream
    /// alone has passed more than `cap` bytes on: the machine kills the run at the cap, and the
    /// events stream is unbounded, so a program writing faster than they are handled must not
    /// fill the daemon's memory meanwhile (the program blocks on its full pipe until it dies).
    private static func read(_ ws: LXDWebSocket, as stream: OutputStream, cap: Int,
                             into sink: AsyncStream<LXDStageMachine.Event>.Continuation) async {
        var passed = 0
        try? await ws.channel.executeThenClose { inbound, outbound in
            for try await frame in inbound {
                switch frame.opcode {
                case .binary, .continuation:
                    let data = frame.unmaskedData
                    if data.readableBytes > 0 { sink.yield(.output(stream, Array(buffer: data))) }
                    passed += data.readableBytes
                    if passed > cap { return }
                case .text:
                    if frame.unmaskedData.readableBytes == 0 { return }  // LXD's end of the stream
                case .connectionClose:
                    return
                case .ping:
                    try await outbound.write(LXDWebSocket.frame(.pong, frame.unmaskedData))
                default:
                    continue
                }
            }
        }
        sink.yield(.ended(stream))
    }

    private static func drain(_ ws: LXDWebSocket) async {
        try? await ws.channel.executeThenClose { inbound, _ in for try await _ in inbound {} }
    }
}

func monotonicNs() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}
