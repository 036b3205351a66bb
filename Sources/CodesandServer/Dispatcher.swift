import CodesandCore
import CodesandProtocol
import Foundation
import NIOPosix

/// Turns one framed line into the reply bytes (nil when nothing is to be sent: notifications).
public struct Dispatcher: Sendable {
    public let service: RunService
    /// Set when the daemon stops: new requests get -32003.
    public let isShuttingDown: @Sendable () -> Bool
    /// `pool.reload`: re-read the config, move the pool to it; nil where reloading is not possible.
    public let reload: (@Sendable () async throws -> ReloadResult)?

    public init(service: RunService, isShuttingDown: @escaping @Sendable () -> Bool = { false },
                reload: (@Sendable () async throws -> ReloadResult)? = nil) {
        self.service = service
        self.isShuttingDown = isShuttingDown
        self.reload = reload
    }

    /// `notify` writes a notification line to the client (the output of `stream` runs);
    /// `afterReply` takes what a run leaves for after its reply (RunService.AfterReply).
    public func handle(line: [UInt8], peer: PeerInfo, afterReply: @escaping RunService.AfterReply = { $0() },
                       notify: @escaping @Sendable (Data) -> Void = { _ in }) async -> Data? {
        switch await LongLineParser.parse(line) {
        case .parseError(let e):
            service.metrics.recordError(code: e.code)
            return RPCEncoder.error(id: nil, e)
        case .single(let incoming):
            return await handle(incoming, peer: peer, afterReply: afterReply, notify: notify)
        case .batch(let items):
            // Members run concurrently; the reply array holds the non-notification answers.
            let replies = await withTaskGroup(of: (Int, Data?).self) { group in
                for (i, item) in items.enumerated() {
                    group.addTask { (i, await self.handle(item, peer: peer, afterReply: afterReply, notify: notify)) }
                }
                var out: [(Int, Data)] = []
                for await (i, reply) in group { if let reply { out.append((i, reply)) } }
                return out.sorted { $0.0 < $1.0 }.map(\.1)
            }
            return replies.isEmpty ? nil : RPCEncoder.batch(replies)
        }
    }

    func handle(_ incoming: RPCIncoming, peer: PeerInfo, afterReply: @escaping RunService.AfterReply,
                notify: @escaping @Sendable (Data) -> Void) async -> Data? {
        switch incoming {
        case .invalid(let id, let e):
            service.metrics.recordError(code: e.code)
            return RPCEncoder.error(id: id, e)
        case .request(let req):
            let reply: Data
            do {
                reply = try await call(req, peer: peer, afterReply: afterReply, notify: notify)
            } catch {
                service.metrics.recordError(code: error.code)
                reply = RPCEncoder.error(id: req.id, error)
            }
            return req.isNotification ? nil : reply
        }
    }

    /// `run.output` notifications for request `id`. A notification request (no id) cannot have its
    /// output matched to it: it streams nothing.
    static func outputSink(id: RPCID?, notify: @escaping @Sendable (Data) -> Void) -> (@Sendable (OutputChunk) -> Void)? {
        guard let id else { return nil }
        return { chunk in notify(RPCEncoder.runOutput(id: id, chunk: chunk)) }
    }

    private func call(_ req: RPCRequest, peer: PeerInfo, afterReply: @escaping RunService.AfterReply,
                      notify: @escaping @Sendable (Data) -> Void) async throws(RPCError) -> Data {
        if isShuttingDown() { throw RPCError(.shuttingDown, "the daemon is shutting down; retry after it restarts") }
        do {
            switch req.method {
            case RPCMethod.run:
                let params = try RunParams(params: req.params)
                let result = try await service.run(params, peer: peer, onOutput: Self.outputSink(id: req.id, notify: notify),
                                                   afterReply: afterReply)
                return try RPCEncoder.result(id: req.id, result)
            case RPCMethod.languages:
                try ParamReader(req.params).rejectUnknown(allowed: [])
                return try RPCEncoder.result(id: req.id, service.languages.infos)
            case RPCMethod.status:
                try ParamReader(req.params).rejectUnknown(allowed: [])
                // It reads /proc and cgroup files: on Swift's pool, not on the connection's event loop.
                let status = await withTaskExecutorPreference(globalConcurrentExecutor) { service.status() }
                return try RPCEncoder.result(id: req.id, status)
            case RPCMethod.poolReload:
                try ParamReader(req.params).rejectUnknown(allowed: [])
                guard let reload else { throw RPCError(.internalError, "this daemon cannot reload") }
                // Reading files and probing languages: on Swift's pool, not on the connection's event loop.
                let result = try await withTaskExecutorPreference(globalConcurrentExecutor) { try await reload() }
                return try RPCEncoder.result(id: req.id, result)
            case RPCMethod.metrics:
                try ParamReader(req.params).rejectUnknown(allowed: [])
                return try RPCEncoder.result(id: req.id, service.metricsText())
            default:
                throw RPCError(.methodNotFound, "method \"\(req.method)\" not found (known: run, languages, status, metrics, pool.reload)")
            }
        } catch let e as RPCError {
            throw e
        } catch {
            throw RPCError(.internalError, "internal error: \(error)")
        }
    }
}

/// Parses request lines. Parsing is linear (JSONParser), but a MiB still costs milliseconds of CPU
/// (a debug build: ~0.1 s): a long line is parsed on a thread of its own, never on Swift's shared
/// cooperative pool (one thread per core), so clients sending many long lines at once delay one
/// another, not every other request.
enum LongLineParser {
    /// Lines up to this long are parsed where they are (well under a millisecond).
    static let inlineBytes = 64 * 1024

    static let thread: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return pool
    }()

    static func parse(_ line: [UInt8]) async -> RPCMessage {
        if line.count <= inlineBytes { return RPCParser.parse(line) }
        do {
            return try await thread.runIfActive { RPCParser.parse(line) }
        } catch {
            return RPCParser.parse(line)  // the pool is never shut down; were it, parse here
        }
    }
}
