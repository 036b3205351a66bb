import CodesandCore
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import Synchronization

/// How LXDClient reaches LXD: its unix socket, or TCP with TLS to a remote LXD (`lxd.url`) — a
/// client certificate LXD trusts, and LXD's self-signed server certificate recognised by its pinned
/// SHA-256 alone (no CA, no host name: its SAN holds only the host's name and loopback). Every
/// request and every exec websocket opens its connection here, so both speak over either.
public struct LXDTransport: Sendable {
    enum Kind: Sendable {
        case unix(path: String)
        case tls(host: String, port: Int, context: NIOSSLContext, pinned: [UInt8])
    }

    let kind: Kind
    /// Where LXD is, for messages: the socket's path or the URL.
    public let address: String
    /// The client certificate's SHA-256 (remote only), for the admin to find it in `lxc config trust list`.
    public let clientFingerprint: String

    public static func unix(_ path: String) -> LXDTransport {
        LXDTransport(kind: .unix(path: path), address: path, clientFingerprint: "")
    }

    /// The transport `[lxd]` names: `url` with its certificate, key and fingerprint, else the socket.
    public static func forConfig(_ lxd: LXDConfig) throws -> LXDTransport {
        guard lxd.isRemote else { return unix(lxd.socket) }
        guard let (host, port) = LXDConfig.parseURL(lxd.url) else {
            throw LXDError(what: "lxd.url", message: "must be https://HOST:PORT, got \"\(lxd.url)\"")
        }
        guard let pinned = LXDConfig.parseFingerprint(lxd.fingerprint) else {
            throw LXDError(what: "lxd.fingerprint", message: "must be a SHA-256 (64 hex digits), got \"\(lxd.fingerprint)\"")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        // The custom callback (connect) replaces verification; `.none` would skip the callback too.
        tls.certificateVerification = .noHostnameVerification
        tls.minimumTLSVersion = .tlsv12
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(lxd.clientCert)
        } catch {
            throw LXDError(what: "lxd.client_cert", message: "\(lxd.clientCert) is not a readable PEM certificate: \(error)")
        }
        guard let leaf = certificates.first else {
            throw LXDError(what: "lxd.client_cert", message: "\(lxd.clientCert) holds no certificate")
        }
        tls.certificateChain = certificates.map { .certificate($0) }
        do {
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: lxd.clientKey, format: .pem))
        } catch {
            throw LXDError(what: "lxd.client_key", message: "\(lxd.clientKey) is not a readable, unencrypted PEM private key: \(error)")
        }
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: tls)
        } catch {
            throw LXDError(what: "lxd.client_key", message: "\(lxd.clientKey) does not go with \(lxd.clientCert): \(error)")
        }
        let client = (try? leaf.toDERBytes()).map { LXDFingerprint.hex(LXDFingerprint.of(der: $0)) } ?? "?"
        return LXDTransport(kind: .tls(host: host, port: port, context: context, pinned: pinned), address: lxd.url,
                            clientFingerprint: client)
    }

    public var isRemote: Bool {
        if case .tls = kind { return true }
        return false
    }

    /// A connection to LXD with `initializer`'s handlers on it (after TLS's, when remote, added once
    /// TLS's handshake is done): a server that is not the pinned one fails here, clearly.
    func connect<Output: Sendable>(group: any EventLoopGroup,
                                   _ initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>) async throws -> Output {
        switch kind {
        case .unix(let path):
            do {
                return try await ClientBootstrap(group: group).connect(unixDomainSocketPath: path, channelInitializer: initializer)
            } catch {
                throw LXDError(what: "connect to LXD at \(path)", message: "\(error)")
            }
        case .tls(let host, let port, let context, let pinned):
            let seen = SeenCertificate()
            let (channel, handshake): (any Channel, EventLoopFuture<Void>)
            do {
                (channel, handshake) = try await ClientBootstrap(group: group).connectTimeout(.seconds(10))
                    .connect(host: host, port: port) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let tls = try NIOSSLClientHandler(context: context, serverHostname: nil) { certificates, result in
                                let fingerprint = certificates.first.flatMap { try? $0.toDERBytes() }.map(LXDFingerprint.of)
                                seen.fingerprint.withLock { $0 = fingerprint }
                                result.succeed(fingerprint == pinned ? .certificateVerified : .failed)
                            }
                            let done = channel.eventLoop.makePromise(of: Void.self)
                            try channel.pipeline.syncOperations.addHandler(tls)
                            try channel.pipeline.syncOperations.addHandler(HandshakeWatch(done))
                            return (channel, done.futureResult)
                        }
                    }
            } catch {
                throw LXDError(what: "connect to LXD at \(address) (lxd.url)", message: "\(error)")
            }
            do {
                try await handshake.get()
            } catch {
                channel.close(promise: nil)
                if let fingerprint = seen.fingerprint.withLock({ $0 }), fingerprint != pinned {
                    throw LXDError(what: "lxd.fingerprint", message: "the server at \(address) presents a certificate with SHA-256 "
                                   + "\(LXDFingerprint.hex(fingerprint)), not the pinned \(LXDFingerprint.hex(pinned)): refused. "
                                   + "If it is your LXD's (on its host: openssl x509 -noout -fingerprint -sha256 -in "
                                   + "/var/lib/lxd/server.crt), set lxd.fingerprint to it")
                }
                throw LXDError(what: "TLS with LXD at \(address)", message: "\(error)")
            }
            // The caller's handlers only now, on a connection that is LXD's: nothing of theirs
            // (an async channel's writer, an upgrade request) exists on one that is refused.
            do {
                return try await channel.eventLoop.flatSubmit { initializer(channel) }.get()
            } catch {
                channel.close(promise: nil)
                throw error
            }
        }
    }
}

/// The server certificate's fingerprint, as the verification callback saw it (for the error).
private final class SeenCertificate: Sendable {
    let fingerprint = Mutex<[UInt8]?>(nil)
}

/// Completes its promise when TLS's handshake is done, or fails it with the first error (or the
/// connection's end) before that.
private final class HandshakeWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private let done: EventLoopPromise<Void>
    private var settled = false

    init(_ done: EventLoopPromise<Void>) { self.done = done }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent { settle(nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        settle(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        settle(ChannelError.eof)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) { settle(ChannelError.ioOnClosedChannel) }

    private func settle(_ error: (any Error)?) {
        guard !settled else { return }
        settled = true
        if let error { done.fail(error) } else { done.succeed() }
    }
}
