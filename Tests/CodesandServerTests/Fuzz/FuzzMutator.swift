/// SplitMix64: small, fast, and the same sequence for a seed on every machine, so a failing input
/// is found again from the seed and its number.
struct FuzzRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// 0..<n (n > 0).
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// Makes inputs from the seed corpus: a seed with one to four mutations, each aimed at a malformed
/// class of issue 13 (deep nesting, huge numbers, invalid UTF-8, NULs, over-long lines, params of
/// the wrong type, repeated members) or at the framing (newlines, CRs, cut lines).
struct FuzzMutator {
    let seeds: [[UInt8]]
    /// Lines past this are over-long for the server under test.
    let maxLine: Int

    static let specialBytes: [UInt8] = [0x00, 0xFF, 0x0A, 0x0D, 0x22, 0x5C, 0x5B, 0x5D, 0x7B, 0x7D, 0x2C, 0x3A, 0xC3, 0xED, 0x20, 0x09, 0x80]
    static let tokens: [String] = [
        "null", "true", "false", "-0", "0", "1e999", "-1e-999", "12345678901234567890123", "9223372036854775808", "1.5",
        #""\ud800""#, #""\udc00\ud800""#, #""\u0000""#, #""\u00e9\ud83d\ude00""#, "\"", "\\", "[]", "{}", "[{}]",
        #""id":"#, #""id":null,"#, #""id":1,"#, #""params":[],"#, #""params":{},"#, #""params":5,"#, #""jsonrpc":"2.0","#,
        #""method":"status","#, #""method":"run","#, #""language":"python3","#, #""code":1,"#, #""limits":{"wall_ms":1e300},"#,
        #""args":[1,2],"#, #""stream":"yes","#, ",", ":", "\n", "\r\n", "\u{FEFF}", "'", "NaN",
    ]

    func input(_ rng: inout FuzzRandom) -> [UInt8] {
        var bytes = rng.pick(seeds)
        for _ in 0...rng.below(4) { mutate(&bytes, &rng) }
        return bytes
    }

    func mutate(_ b: inout [UInt8], _ rng: inout FuzzRandom) {
        let at = b.isEmpty ? 0 : rng.below(b.count + 1)
        func range() -> Range<Int> {
            guard !b.isEmpty else { return 0..<0 }
            let start = rng.below(b.count)
            return start..<min(b.count, start + 1 + rng.below(32))
        }
        switch rng.below(11) {
        case 0 where !b.isEmpty:  // flip a bit
            let i = rng.below(b.count)
            b[i] ^= 1 << UInt8(rng.below(8))
        case 1:  // a byte that means something to JSON, UTF-8 or the framing
            b.insert(rng.pick(Self.specialBytes), at: at)
        case 2:  // cut a range
            b.removeSubrange(range())
        case 3:  // repeat a range
            let r = range()
            b.insert(contentsOf: Array(b[r]), at: r.upperBound)
        case 4:  // splice in a range of another seed
            let other = rng.pick(seeds)
            if !other.isEmpty {
                let s = rng.below(other.count)
                b.insert(contentsOf: other[s..<min(other.count, s + 1 + rng.below(64))], at: at)
            }
        case 5:  // end early (the last line loses its newline, or more)
            b.removeSubrange(at..<b.count)
        case 6:  // a token: a literal, a member, a number past 64 bits, a lone surrogate
            b.insert(contentsOf: Array(rng.pick(Self.tokens).utf8), at: at)
        case 7:  // nest a range, sometimes past the limit of 64
            let r = range(), depth = 1 + rng.below(rng.chance(20) ? 200 : 70)
            let (open, close) = rng.chance(50)
                ? (Array(repeating: UInt8(ascii: "["), count: depth), Array(repeating: UInt8(ascii: "]"), count: depth))
                : (Array(String(repeating: #"{"a":"#, count: depth).utf8), Array(repeating: UInt8(ascii: "}"), count: depth))
            b.replaceSubrange(r, with: open + b[r] + close)
        case 8 where rng.chance(25):  // a line past the maximum
            b.insert(contentsOf: Array(repeating: UInt8(ascii: rng.chance(50) ? "a" : " "), count: maxLine + rng.below(64)), at: at)
        case 9:  // a run of digits
            b.insert(contentsOf: Array(repeating: UInt8(ascii: "7"), count: 1 + rng.below(rng.chance(10) ? 5000 : 40)), at: at)
        default:  // swap two ranges' order
            let r = range()
            let cut = Array(b[r])
            b.removeSubrange(r)
            b.insert(contentsOf: cut, at: b.isEmpty ? 0 : rng.below(b.count + 1))
        }
    }
}
