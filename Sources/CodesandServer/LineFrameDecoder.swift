import NIOCore

/// A frame of the wire protocol: one line without its "\n", or news of an over-long line.
public enum LineFrame: Equatable, Sendable {
    case line(ByteBuffer)
    /// A line passed the maximum length. The connection answers -32600 and reads no more requests.
    case tooLong
    /// The rest of the over-long line has been read and dropped: its "\n" came, or `maxDiscard`
    /// bytes did. The connection closes once the replies it owes are written.
    case tooLongEnded
}

/// Splits the byte stream on "\n" with a bounded line length (the daemon's memory per connection
/// stays bounded whatever a client sends). A trailing "\r" is kept: JSON parsing ignores it.
///
/// After an over-long line it drops the rest of that line instead of making the connection close
/// at once: a client still sending it (`sendall`, then read) would get EPIPE and never read the
/// -32600 reply. Everything after that line is dropped too.
public struct LineFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = LineFrame
    public let maxLength: Int
    /// The most bytes of an over-long line's rest that are read and dropped before giving up on it.
    public let maxDiscard: Int
    private var scanned = 0
    private enum State { case lines, discarding(left: Int), done }
    private var state = State.lines

    public init(maxLength: Int, maxDiscard: Int = 16 << 20) {
        self.maxLength = maxLength
        self.maxDiscard = maxDiscard
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        switch state {
        case .done:
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        case .discarding(let left):
            discard(context: context, buffer: &buffer, left: left)
            return .needMoreData
        case .lines:
            break
        }
        let view = buffer.readableBytesView
        let start = view.startIndex + scanned
        if let newline = view[start...].firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - view.startIndex
            scanned = 0
            if length > maxLength {
                state = .discarding(left: maxDiscard)
                context.fireChannelRead(Self.wrapInboundOut(.tooLong))
                discard(context: context, buffer: &buffer, left: maxDiscard)
                return .needMoreData
            }
            let line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            context.fireChannelRead(Self.wrapInboundOut(.line(line)))
            return .continue
        }
        scanned = view.count
        if view.count > maxLength {
            scanned = 0
            buffer.moveReaderIndex(to: buffer.writerIndex)
            state = .discarding(left: maxDiscard)
            context.fireChannelRead(Self.wrapInboundOut(.tooLong))
        }
        return .needMoreData
    }

    /// Drops the over-long line's bytes up to its "\n" or `left` more bytes, whichever comes first.
    private mutating func discard(context: ChannelHandlerContext, buffer: inout ByteBuffer, left: Int) {
        if let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")),
           newline - buffer.readerIndex < left {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            state = .done
            context.fireChannelRead(Self.wrapInboundOut(.tooLongEnded))
            return
        }
        let dropped = buffer.readableBytes
        buffer.moveReaderIndex(to: buffer.writerIndex)
        if dropped >= left {
            state = .done
            context.fireChannelRead(Self.wrapInboundOut(.tooLongEnded))
        } else {
            state = .discarding(left: left - dropped)
        }
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A last message without its "\n" when the client ends its input (`printf … | socat`) still counts.
        if case .lines = state, seenEOF, buffer.readableBytes > 0, buffer.readableBytes <= maxLength {
            let line = buffer.readSlice(length: buffer.readableBytes)!
            context.fireChannelRead(Self.wrapInboundOut(.line(line)))
        }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}
