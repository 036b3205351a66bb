import NIOCore

/// A frame of the wire protocol: one line without its "\n", or the news that a line was too long.
public enum LineFrame: Equatable, Sendable {
    case line(ByteBuffer)
    /// A line passed the maximum length. The connection answers -32600 and closes.
    case tooLong
}

/// Splits the byte stream on "\n" with a bounded line length (the daemon's memory per connection
/// stays bounded whatever a client sends). A trailing "\r" is kept: JSON parsing ignores it.
public struct LineFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = LineFrame
    public let maxLength: Int
    private var scanned = 0
    private var failed = false

    public init(maxLength: Int) {
        self.maxLength = maxLength
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if failed {
            buffer.moveReaderIndex(to: buffer.writerIndex)  // discard everything after an over-long line
            return .needMoreData
        }
        let view = buffer.readableBytesView
        let start = view.startIndex + scanned
        if let newline = view[start...].firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - view.startIndex
            scanned = 0
            if length > maxLength { return overlong(context: context, buffer: &buffer) }
            let line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            context.fireChannelRead(Self.wrapInboundOut(.line(line)))
            return .continue
        }
        scanned = view.count
        if view.count > maxLength { return overlong(context: context, buffer: &buffer) }
        return .needMoreData
    }

    private mutating func overlong(context: ChannelHandlerContext, buffer: inout ByteBuffer) -> DecodingState {
        failed = true
        buffer.moveReaderIndex(to: buffer.writerIndex)
        context.fireChannelRead(Self.wrapInboundOut(.tooLong))
        return .needMoreData
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A last message without its "\n" when the client ends its input (`printf … | socat`) still counts.
        if seenEOF && !failed && buffer.readableBytes > 0 && buffer.readableBytes <= maxLength {
            let line = buffer.readSlice(length: buffer.readableBytes)!
            context.fireChannelRead(Self.wrapInboundOut(.line(line)))
        }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}
