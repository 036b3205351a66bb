import CodesandProtocol
import Foundation
import NIOCore

/// One JSON-RPC response as read off the wire. The `result` member is kept as the exact bytes the
/// daemon sent, so a caller can decode it into a typed result or pass it on unchanged
/// (`codesand run --json`).
struct Reply: Sendable {
    enum Outcome: Sendable {
        case result(ByteBuffer)
        case error(RPCError)
    }

    /// `nil` when the daemon answered with `"id": null` (it could not read the request's id).
    var id: RPCID?
    var outcome: Outcome

    /// Parses one line (without its `\n`) as a single response object; a notification is a
    /// protocol violation here.
    static func parse(_ line: ByteBuffer) throws(CodesandClientError) -> Reply {
        switch try InboundMessage.parse(line) {
        case .reply(let reply): return reply
        case .notification: throw .protocolViolation("a notification where a reply was expected")
        }
    }
}

/// A notification from the daemon (a message with `method` and no `id`), such as `run.output`.
/// `params` is kept as the exact bytes sent; whoever handles the method decodes it.
struct InboundNotification: Sendable {
    var method: String
    var params: ByteBuffer?
}

/// One message from the daemon: a reply to one of our requests, or a notification.
enum InboundMessage: Sendable {
    case reply(Reply)
    case notification(InboundNotification)

    /// Parses one line (without its `\n`) as a single response or notification object.
    static func parse(_ line: ByteBuffer) throws(CodesandClientError) -> InboundMessage {
        let scanned = line.withUnsafeReadableBytes { bytes in
            var scanner = JSONObjectScanner(bytes: bytes)
            return Result { () throws(JSONObjectScanner.Failure) in try scanner.members() }
        }
        let members: [String: Range<Int>]
        switch scanned {
        case .success(let m): members = m
        case .failure(let f): throw .protocolViolation("reply is not a JSON-RPC response object: \(f.reason)")
        }
        func slice(_ range: Range<Int>) -> ByteBuffer {
            line.getSlice(at: line.readerIndex + range.lowerBound, length: range.count)!
        }
        func decode<T: Decodable>(_ type: T.Type, _ key: String) throws(CodesandClientError) -> T {
            do {
                return try JSONDecoder().decode(T.self, from: Data(slice(members[key]!).readableBytesView))
            } catch {
                throw .protocolViolation("reply member \"\(key)\" is malformed: \(error)")
            }
        }

        guard let version = members["jsonrpc"], slice(version).readableBytesView.elementsEqual(#""2.0""#.utf8) else {
            throw .protocolViolation(#"reply lacks "jsonrpc": "2.0""#)
        }
        if members["method"] != nil {
            // The daemon never sends requests (a method with an id) to its clients.
            if let unknown = members.keys.sorted().first(where: { !["jsonrpc", "method", "params"].contains($0) }) {
                throw .protocolViolation("notification has an unexpected member \"\(unknown)\"")
            }
            let method = try decode(String.self, "method")
            return .notification(InboundNotification(method: method, params: members["params"].map(slice)))
        }
        if let unknown = members.keys.sorted().first(where: { !["jsonrpc", "id", "result", "error"].contains($0) }) {
            throw .protocolViolation("reply has an unknown member \"\(unknown)\"")
        }
        guard let idRange = members["id"] else { throw .protocolViolation("reply has no id") }
        let idBytes = slice(idRange).readableBytesView
        // Our own ids are small integers: read those directly (JSONDecoder cost more than the rest).
        let plainInt = !idBytes.isEmpty && idBytes.count <= 18 && idBytes.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
            && (idBytes.first != UInt8(ascii: "0") || idBytes.count == 1)
        let id: RPCID? = idBytes.elementsEqual("null".utf8) ? nil
            : plainInt ? .int(idBytes.reduce(Int64(0)) { $0 * 10 + Int64($1 - UInt8(ascii: "0")) }) : try decode(RPCID.self, "id")

        switch (members["result"], members["error"]) {
        case (let result?, nil):
            return .reply(Reply(id: id, outcome: .result(slice(result))))
        case (nil, .some):
            return .reply(Reply(id: id, outcome: .error(try decode(RPCError.self, "error"))))
        default:
            throw .protocolViolation(#"reply must have exactly one of "result" and "error""#)
        }
    }
}

/// Finds the members of one top-level JSON object and the byte range of each value, without
/// decoding the values. Values are skipped by structure only (strings, brackets, bare literals);
/// whoever uses a value decodes it and so validates it.
struct JSONObjectScanner {
    struct Failure: Error {
        let reason: String
    }

    let bytes: UnsafeRawBufferPointer
    private var i = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    mutating func members() throws(Failure) -> [String: Range<Int>] {
        skipSpace()
        if peek == UInt8(ascii: "[") { throw Failure(reason: "a batch array, but no batch was sent") }
        try expect("{")
        var out: [String: Range<Int>] = [:]
        skipSpace()
        if peek == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                skipSpace()
                let key = try readKey()
                skipSpace()
                try expect(":")
                skipSpace()
                let start = i
                try skipValue()
                if out.updateValue(start..<i, forKey: key) != nil { throw Failure(reason: "duplicate member \"\(key)\"") }
                skipSpace()
                if peek == UInt8(ascii: ",") { i += 1; continue }
                try expect("}")
                break
            }
        }
        skipSpace()
        guard i == bytes.count else { throw Failure(reason: "data after the object") }
        return out
    }

    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    private mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { i += 1 }
    }

    private mutating func expect(_ char: Unicode.Scalar) throws(Failure) {
        guard peek == UInt8(ascii: char) else {
            throw Failure(reason: "expected '\(char)' at byte \(i)")
        }
        i += 1
    }

    private mutating func readKey() throws(Failure) -> String {
        let start = i
        try skipString()
        let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<i])
        guard !raw.contains(UInt8(ascii: "\\")) else {
            // Rare: an escaped key. Let Foundation undo the escapes.
            guard let key = try? JSONDecoder().decode(String.self, from: Data(raw)) else {
                throw Failure(reason: "bad member name at byte \(start)")
            }
            return key
        }
        return String(decoding: raw.dropFirst().dropLast(), as: UTF8.self)
    }

    private mutating func skipString() throws(Failure) {
        try expect("\"")
        while let c = peek {
            i += 1
            if c == UInt8(ascii: "\"") { return }
            if c == UInt8(ascii: "\\") { i += 1 }
        }
        throw Failure(reason: "unterminated string")
    }

    private mutating func skipValue() throws(Failure) {
        switch peek {
        case UInt8(ascii: "\"")?:
            try skipString()
        case UInt8(ascii: "{")?, UInt8(ascii: "[")?:
            var depth = 0
            while let c = peek {
                switch c {
                case UInt8(ascii: "\""): try skipString(); continue
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
                default: break
                }
                i += 1
                if depth == 0 { return }
            }
            throw Failure(reason: "unterminated object or array")
        case nil:
            throw Failure(reason: "missing value at byte \(i)")
        default:
            // A number, true, false or null: up to the next delimiter.
            let start = i
            while let c = peek, !Self.delimiters.contains(c) { i += 1 }
            if i == start { throw Failure(reason: "missing value at byte \(i)") }
        }
    }

    private static let delimiters: Set<UInt8> = Set(",}] \t\r\n:".utf8)
}
