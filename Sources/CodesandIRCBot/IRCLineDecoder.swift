import NIOCore

/// Splits what the IRC server sends into lines: each ends in LF, an optional CR before it is
/// dropped. A line longer than `maxLength` bytes is skipped whole rather than buffered without
/// bound or cut into pieces that would each be read as a message.
struct IRCLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String

    /// 512 bytes of message plus up to 8191 of IRCv3 tags, with room to spare.
    static let defaultMaxLength = 16 * 1024

    let maxLength: Int
    private var skipping = false

    init(maxLength: Int = IRCLineDecoder.defaultMaxLength) {
        self.maxLength = maxLength
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > maxLength {
                skipping = true
                buffer.moveReaderIndex(to: buffer.writerIndex)
            }
            return .needMoreData
        }
        let length = newline - view.startIndex
        var line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if skipping || length > maxLength {  // the tail of an over-long line, or all of it
            skipping = false
            return .continue
        }
        if line.readableBytesView.last == UInt8(ascii: "\r") { line.moveWriterIndex(to: line.writerIndex - 1) }
        // IRC has no declared encoding: invalid UTF-8 (e.g. Latin-1 from old clients) becomes U+FFFD.
        context.fireChannelRead(wrapInboundOut(String(buffer: line)))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        buffer.moveReaderIndex(to: buffer.writerIndex)  // a partial line at EOF is not a message
        return .needMoreData
    }
}
