/// "key value" lines, as cgroup and proc files give them (memory.stat, memory.events, cpu.stat,
/// memory.oom_control, cgroup.events): the values of some keys, in one pass over the text's bytes.
///
/// Read on every run (a slot's page cache at ready, its OOM kills and CPU time at the end), where
/// splitting the text into Substrings line by line cost the daemon more than the read itself
/// (memory.stat has some 40 lines on cgroup v1).
public enum KeyedLines {
    /// The value of `key`: its first line that holds `key` and a decimal integer (optional sign),
    /// separated by spaces, with nothing else but spaces around them.
    public static func value(_ text: String, _ key: String) -> Int64? {
        values(text, [key])[0]
    }

    /// The values of `keys` (nil where a key has no such line), in the order asked.
    public static func values(_ text: String, _ keys: [String]) -> [Int64?] {
        var found = [Int64?](repeating: nil, count: keys.count)
        let wanted = keys.map { Array($0.utf8) }
        var text = text
        text.withUTF8 { bytes in
            var lineStart = 0
            while lineStart < bytes.count {
                var lineEnd = lineStart
                while lineEnd < bytes.count, bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
                let line = UnsafeBufferPointer(rebasing: bytes[lineStart..<lineEnd])
                lineStart = lineEnd + 1
                guard let (key, value) = split(line) else { continue }
                for (i, name) in wanted.enumerated() where found[i] == nil && name.elementsEqual(key) {
                    found[i] = value
                }
                if !found.contains(where: { $0 == nil }) { return }  // memory.stat's keys are near its top
            }
        }
        return found
    }

    /// "key value" (spaces around and between allowed, nothing else) → the key's bytes and the value.
    private static func split(_ line: UnsafeBufferPointer<UInt8>) -> (Slice<UnsafeBufferPointer<UInt8>>, Int64)? {
        let space = UInt8(ascii: " ")
        var i = line.startIndex
        while i < line.endIndex, line[i] == space { i += 1 }
        let keyStart = i
        while i < line.endIndex, line[i] != space { i += 1 }
        let key = line[keyStart..<i]
        while i < line.endIndex, line[i] == space { i += 1 }
        var end = line.endIndex
        while end > i, line[end - 1] == space { end -= 1 }
        guard !key.isEmpty, i < end, let value = integer(line[i..<end]) else { return nil }
        return (key, value)
    }

    /// A decimal integer with an optional sign, no other characters; nil on overflow.
    private static func integer(_ digits: Slice<UnsafeBufferPointer<UInt8>>) -> Int64? {
        guard !digits.isEmpty else { return nil }
        var i = digits.startIndex
        var negative = false
        if digits[i] == UInt8(ascii: "-") || digits[i] == UInt8(ascii: "+") {
            negative = digits[i] == UInt8(ascii: "-")
            i += 1
        }
        guard i < digits.endIndex else { return nil }
        var value: Int64 = 0
        while i < digits.endIndex {
            let c = digits[i]
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            // Toward the sign, so that Int64.min parses too.
            let digit = Int64(c - UInt8(ascii: "0"))
            let (times, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = negative ? times.subtractingReportingOverflow(digit) : times.addingReportingOverflow(digit)
            if o1 || o2 { return nil }
            value = sum
            i += 1
        }
        return value
    }
}
