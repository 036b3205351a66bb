import NIOCore
import NIOPosix
import NIOSSL

/// Opens the byte stream to an IRC server: TCP, with TLS on top when the server wants it, and the
/// line decoder. The server's certificate is checked against the system's CAs (or `caFile`) and
/// must name the host connected to; only `insecure` turns that off.
public enum IRCConnection {
    public typealias Lines = NIOAsyncChannel<String, ByteBuffer>

    /// The TLS context for these settings, made once: reading the CA store and the client
    /// certificate is slow and can fail, so a bad file is an error at start, not at each reconnect.
    public static func makeTLSContext(_ settings: TLSSettings) throws -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        if settings.insecure {
            tls.certificateVerification = .none
        } else if let caFile = settings.caFile {
            tls.trustRoots = .file(caFile)
        }
        if let certificate = settings.clientCertificate {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: settings.clientKey ?? certificate, format: .pem))
        }
        return try NIOSSLContext(configuration: tls)
    }

    public static func open(_ server: IRCServerAddress, tls context: NIOSSLContext?,
                            group: any EventLoopGroup) async throws -> Lines {
        if server.tls && context == nil { throw TLSNotConfigured() }
        // SNI and the name check use the host name; an IP address is checked against the certificate's
        // IP entries (and sent without SNI, which may not carry an address).
        let hostname = isIPAddress(server.host) ? nil : server.host
        return try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.so_keepalive), value: 1)  // notice a server that vanished
            .connectTimeout(.seconds(20))
            .connect(host: server.host, port: server.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if server.tls, let context {
                        let handler = try NIOSSLClientHandler(context: context, serverHostname: hostname)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(IRCLineDecoder()))
                    return try Lines(wrappingChannelSynchronously: channel)
                }
            }
    }

    struct TLSNotConfigured: Error, CustomStringConvertible {
        var description: String { "a TLS server but no TLS context" }
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
