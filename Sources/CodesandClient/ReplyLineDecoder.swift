import NIOCore

/// Splits the inbound byte stream into messages: each one ends in `\n` (the `\n` is dropped).
/// A line longer than `maxLength` bytes is an error, so a broken peer cannot make us buffer without
/// bound. Replies can be large (a `run` result with 1 MiB of output escaped as JSON), hence the
/// default of 64 MiB.
struct ReplyLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    static let defaultMaxLength = CodesandClient.defaultMaxReplyBytes

    struct LineTooLong: Error, CustomStringConvertible {
        let maxLength: Int
        var description: String { "a reply line is longer than \(maxLength) bytes" }
    }

    let maxLength: Int
    /// Bytes at the front of the buffer already searched for `\n`, so a long line is scanned once.
    private var scanned = 0

    init(maxLength: Int = ReplyLineDecoder.defaultMaxLength) {
        self.maxLength = maxLength
    }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        guard let newline = view[(view.startIndex + scanned)...].firstIndex(of: UInt8(ascii: "\n")) else {
            scanned = view.count
            if scanned > maxLength { throw LineTooLong(maxLength: maxLength) }
            return .needMoreData
        }
        let length = newline - view.startIndex
        scanned = 0
        if length > maxLength { throw LineTooLong(maxLength: maxLength) }
        let line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A partial line at EOF is not a message: drop it. Pending calls fail as the channel closes.
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}
