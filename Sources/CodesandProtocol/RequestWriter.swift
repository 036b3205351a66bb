/// The `run` request written by hand, as the daemon writes its replies (JSONWriter): a bot's
/// client sends one per snippet, and Foundation's encoder was about an eighth of the client's CPU
/// per run (a profile of `codesand bench`). Byte for byte what JSONEncoder gives with
/// `.sortedKeys, .withoutEscapingSlashes` (JSONWriterTests compares the two).
extension RunParams: JSONWritable {
    /// Members in sorted order; absent ones omitted (as the synthesized `encode(to:)` does).
    public func write(to w: inout JSONWriter) {
        w.raw("{")
        var first = true
        func key(_ k: StaticString) { w.key(k, first: first); first = false }
        if let args { key("args"); w.strings(args) }
        key("code"); w.string(code)
        if let compileFlags { key("compile_flags"); w.strings(compileFlags) }
        key("language"); w.string(language)
        if let limits { key("limits"); limits.write(to: &w) }
        if let prestart { key("prestart"); w.bool(prestart) }
        if let requester { key("requester"); w.string(requester) }
        if let stdin { key("stdin"); w.string(stdin) }
        if let stream { key("stream"); w.bool(stream) }
        w.raw("}")
    }
}

extension RunLimits: JSONWritable {
    private static let sortedLimits = Limit.allCases.sorted { $0.key < $1.key }

    public func write(to w: inout JSONWriter) {
        w.raw("{")
        var first = true
        for limit in Self.sortedLimits {
            guard let value = self[limit] else { continue }
            if !first { w.raw(",") }
            first = false
            w.string(limit.key)
            w.raw(":")
            w.int(value)
        }
        w.raw("}")
    }
}

extension JSONWriter {
    mutating func strings(_ list: [String]) {
        raw("[")
        for (i, s) in list.enumerated() {
            if i > 0 { raw(",") }
            string(s)
        }
        raw("]")
    }
}
