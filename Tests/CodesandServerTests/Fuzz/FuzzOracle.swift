import CodesandProtocol
import Foundation

/// What the framing must make of an input: the model LineFrameDecoder is checked against.
enum FrameModel {
    enum Frame: Equatable { case line([UInt8]), tooLong, tooLongEnded }

    static func frames(_ input: [UInt8], maxLine: Int) -> [Frame] {
        var out: [Frame] = [], start = 0
        while start < input.count {
            guard let newline = input[start...].firstIndex(of: 0x0A) else {
                // The input ends without "\n": the last line counts (the client ended its input).
                out.append(input.count - start > maxLine ? .tooLong : .line(Array(input[start...])))
                return out
            }
            if newline - start > maxLine { return out + [.tooLong, .tooLongEnded] }  // nothing after it is read
            out.append(.line(Array(input[start..<newline])))
            start = newline + 1
        }
        return out
    }

    /// A line the connection ignores (keep-alive).
    static func isBlank(_ line: [UInt8]) -> Bool { line.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D } }
}

/// Checks one request line's reply against JSON-RPC 2.0 and protocol.md. Whether the line is JSON
/// is Python's strict verdict (StrictJSON); its structure (ids, notifications, batches) is read
/// with Foundation, which is lenient (trailing commas) but refuses numbers past a double's range.
enum ReplyOracle {
    static let knownCodes = Set(RPCErrorCode.allCases.map(\.rawValue))

    /// The request as Foundation reads it.
    enum View {
        case object([String: Any])
        case array([Any])
        case scalar
        /// Foundation cannot read it: only the verdict and the reply's own shape are checked.
        case unknown
    }

    static func view(_ line: [UInt8]) -> View {
        guard let value = try? JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed]) else { return .unknown }
        if let o = value as? [String: Any] { return .object(o) }
        if let a = value as? [Any] { return .array(a) }
        return .scalar
    }

    /// A request that must get no reply: no id member, and a valid envelope.
    static func isNotification(_ value: Any) -> Bool {
        guard let o = value as? [String: Any], o["id"] == nil, o["jsonrpc"] as? String == "2.0", o["method"] is String else { return false }
        return o["params"] == nil || o["params"] is [String: Any] || o["params"] is [Any]
    }

    /// Problems with the reply to `line` (nil: none was sent); empty when all is well.
    static func problems(line: [UInt8], reply: Data?, verdict: StrictJSON.Verdict) -> [String] {
        let request = view(line)
        guard let reply else {
            if verdict == .bad { return ["no reply to a line that is not JSON"] }
            switch request {
            case .unknown: return []
            case .object(let o) where isNotification(o): return []
            case .array(let a) where (1...RPCParser.maxBatch).contains(a.count) && a.allSatisfy(isNotification): return []
            default: return ["no reply to a line that is not a notification"]
            }
        }
        guard let parsed = parseReply(reply) else {
            return ["the reply is not JSON: \(String(decoding: reply.prefix(300), as: UTF8.self))"]
        }
        let single = parsed as? [String: Any]
        let code = (single?["error"] as? [String: Any])?["code"] as? Int
        let message = (single?["error"] as? [String: Any])?["message"] as? String ?? ""
        let nullID = single?["id"] is NSNull
        // Refused as a whole before the request was read: not strict JSON, too deep, a repeated
        // member, a batch too big.
        let wholeLineRefusal = (code == -32600 || code == -32700) && nullID
        var out: [String] = []
        switch verdict {
        case .bad:
            // Too deep or a repeated member may be seen before the syntax error further on.
            let earlyRefusal = code == -32600 && (message.contains("nested deeper") || message.contains("twice"))
            if !((code == -32700 || earlyRefusal) && nullID) { out.append("a line that is not JSON got \(String(describing: code)), not -32700") }
        case .ok:
            if code == -32700 { out.append("-32700 for a line that is JSON: \(message)") }
        case .loneSurrogate, .tooDeepForPython:
            break
        }
        if let items = parsed as? [Any] {
            out += items.flatMap { response($0) }
            switch request {
            case .unknown: break
            case .array(let requests):
                let answered = requests.filter { !isNotification($0) }.count
                if items.count != answered { out.append("\(items.count) replies in the batch for \(answered) requests") }
            default: out.append("an array reply to a line that is not a batch")
            }
            return out
        }
        out += response(parsed)
        switch request {
        case .object(let o):
            if isNotification(o) && !wholeLineRefusal { out.append("a reply to a notification") }
            switch o["id"] {
            case let id as String where !wholeLineRefusal:
                if single?["id"] as? String != id { out.append("id \(id) came back as \(String(describing: single?["id"]))") }
            case is NSNumber where !wholeLineRefusal:
                if !(single?["id"] is NSNumber) { out.append("a numeric id came back as \(String(describing: single?["id"]))") }
            case .some where !(o["id"] is String || o["id"] is NSNumber || o["id"] is NSNull):
                if !wholeLineRefusal { out.append("an object or array id is not -32600 with a null id") }
            default: break
            }
        case .array(let a):
            if !(wholeLineRefusal && (code == -32700 || a.isEmpty || a.count > RPCParser.maxBatch || message.contains("nested")
                                      || message.contains("twice"))) {
                out.append("a batch of \(a.count) got a single reply: \(message)")
            }
        case .scalar:
            if !wholeLineRefusal { out.append("a scalar line got \(String(describing: code)), not -32600") }
        case .unknown:
            break
        }
        return out
    }

    /// A reply as Foundation objects. An id is echoed as the client wrote it, and Foundation refuses
    /// numbers past a double's range (`1e400`, which RFC 8259 allows): such a reply is read with
    /// the strict parser instead.
    static func parseReply(_ reply: Data) -> Any? {
        if let value = try? JSONSerialization.jsonObject(with: reply, options: [.fragmentsAllowed]) { return value }
        return (try? JSONParser.parse(Array(reply))).map(foundation)
    }

    static func foundation(_ v: JSONValue) -> Any {
        switch v {
        case .null: return NSNull()
        case .bool(let b): return NSNumber(value: b)
        case .int(let i): return NSNumber(value: i)
        case .double(let d): return NSNumber(value: d)
        case .string(let s): return s
        case .array(let a): return a.map(foundation)
        case .object(let o): return o.mapValues(foundation)
        }
    }

    /// A `run.output` notification: its members and nothing else.
    static func outputNotification(_ n: [String: Any]) -> [String] {
        guard n["jsonrpc"] as? String == "2.0", n["method"] as? String == "run.output", n["id"] == nil,
              let p = n["params"] as? [String: Any], p["id"] is String || p["id"] is NSNumber,
              p["stream"] as? String == "stdout" || p["stream"] as? String == "stderr", p["text"] is String,
              Set(n.keys) == ["jsonrpc", "method", "params"], Set(p.keys) == ["id", "stream", "text"] else {
            return ["a malformed notification: \(n)"]
        }
        return []
    }

    /// One response object: JSON-RPC 2.0's shape, a known error code.
    static func response(_ value: Any) -> [String] {
        guard let r = value as? [String: Any] else { return ["a response that is not an object"] }
        var out: [String] = []
        if r["jsonrpc"] as? String != "2.0" { out.append("jsonrpc is not \"2.0\"") }
        if let extra = Set(r.keys).subtracting(["jsonrpc", "id", "result", "error"]).first { out.append("unexpected member \(extra)") }
        if !(r["id"] is NSNull || r["id"] is String || r["id"] is NSNumber) { out.append("id missing or not a string, number or null") }
        switch (r["result"], r["error"]) {
        case (.some, nil): break
        case (nil, let error as [String: Any]):
            guard let code = error["code"] as? Int, knownCodes.contains(code) else { out.append("unknown error code \(String(describing: error["code"]))"); break }
            if (error["message"] as? String ?? "").isEmpty { out.append("error \(code) without a message") }
            if let extra = Set(error.keys).subtracting(["code", "message", "data"]).first { out.append("unexpected error member \(extra)") }
        default: out.append("not exactly one of result and error")
        }
        return out
    }
}
