import Foundation

/// Encodes responses and requests as single lines (the caller adds the `\n`). The daemon's reply
/// envelope is assembled here rather than by JSONEncoder so that the id is written exactly as the
/// client sent it (RPCID.json); members come in sorted order: error/result, id, jsonrpc.
public enum RPCEncoder {
    struct Request<P: Encodable>: Encodable {
        let jsonrpc = "2.0"
        let id: RPCID?
        let method: String
        let params: P?
    }

    static func makeEncoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }

    static func idJSON(_ id: RPCID?) -> String { id?.json ?? "null" }

    public static func result(id: RPCID?, _ result: some Encodable) throws -> Data {
        var out = Data(#"{"id":\#(idJSON(id)),"jsonrpc":"2.0","result":"#.utf8)
        if let writable = result as? any JSONWritable {
            var w = JSONWriter()
            writable.write(to: &w)
            out.append(contentsOf: w.bytes)
        } else {
            out.append(try makeEncoder().encode(result))
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    public static func error(id: RPCID?, _ error: RPCError) -> Data {
        var out = Data(#"{"error":"#.utf8)
        // Encoding an RPCError (strings, an integer, a JSONValue) cannot fail.
        out.append((try? makeEncoder().encode(error)) ?? Data(#"{"code":-32603,"message":"internal error"}"#.utf8))
        out.append(contentsOf: #","id":\#(idJSON(id)),"jsonrpc":"2.0"}"#.utf8)
        return out
    }

    public static func request(id: RPCID?, method: String, params: (some Encodable)?) throws -> Data {
        // A `run` request (params that write themselves) is written by hand; the same bytes.
        guard let writable = params as? any JSONWritable else {
            return try makeEncoder().encode(Request(id: id, method: method, params: params))
        }
        var w = JSONWriter(capacity: 256)
        w.raw("{")
        if let id { w.key("id", first: true); w.bytes.append(contentsOf: id.json.utf8); w.key("jsonrpc") } else { w.key("jsonrpc", first: true) }
        w.string("2.0")
        w.key("method"); w.string(method)
        w.key("params"); writable.write(to: &w)
        w.raw("}")
        return Data(w.bytes)
    }

    struct Notification<P: Encodable>: Encodable {
        let jsonrpc = "2.0"
        let method: String
        let params: P
    }

    /// A notification from the daemon (no id).
    public static func notification(method: String, params: some Encodable) -> Data {
        (try? makeEncoder().encode(Notification(method: method, params: params))) ?? Data()
    }

    /// A `run.output` notification: a piece of output of the request `id` (written as sent).
    public static func runOutput(id: RPCID, chunk: OutputChunk) -> Data {
        Data(#"{"jsonrpc":"2.0","method":"\#(RPCMethod.runOutput)","params":{"id":\#(id.json),"stream":"\#(chunk.stream.rawValue)","text":\#(JSONText.quoted(chunk.text))}}"#.utf8)
    }

    /// A batch reply: the given encoded responses joined into one JSON array.
    public static func batch(_ responses: [Data]) -> Data {
        var out = Data("[".utf8)
        for (i, r) in responses.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(r)
        }
        out.append(UInt8(ascii: "]"))
        return out
    }
}

enum JSONText {
    /// A string as a JSON string literal, escaped as JSONEncoder escapes it.
    static func quoted(_ s: String) -> String {
        var w = JSONWriter(capacity: s.utf8.count + 2)
        w.string(s)
        return String(decoding: w.bytes, as: UTF8.self)
    }
}
