import Foundation

/// Python's json module as a strict, independent judge of whether bytes are one RFC 8259 JSON
/// text: UTF-8 decoded strictly, no NaN/Infinity, no trailing commas, no leading zeros. Used by
/// the fuzzer to check the daemon's -32700 decisions both ways. One process for the whole run.
final class StrictJSON {
    enum Verdict: String {
        case ok, bad
        /// Python accepts a lone `\uD800` escape; the daemon refuses it (protocol.md): no verdict.
        case loneSurrogate = "surrogate"
        /// Past Python's recursion limit: no verdict (the daemon stops at 64 levels anyway).
        case tooDeepForPython = "deep"
    }

    static let script = #"""
    import binascii, json, sys
    if hasattr(sys, "set_int_max_str_digits"): sys.set_int_max_str_digits(0)
    def constant(name): raise ValueError(name)
    def surrogate(v):
        if isinstance(v, str): return any(0xD800 <= ord(c) <= 0xDFFF for c in v)
        if isinstance(v, list): return any(surrogate(x) for x in v)
        if isinstance(v, dict): return any(surrogate(k) or surrogate(x) for k, x in v.items())
        return False
    for line in sys.stdin:
        try:
            value = json.loads(binascii.unhexlify(line.strip()).decode("utf-8"), parse_constant=constant)
            print("surrogate" if surrogate(value) else "ok", flush=True)
        except RecursionError:
            print("deep", flush=True)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            print("bad", flush=True)
    """#

    private let process = Process()
    private let input = Pipe(), output = Pipe()
    private var buffer: [UInt8] = []

    init() throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", Self.script]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    deinit {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    func verdict(_ bytes: [UInt8]) -> Verdict {
        let hex = bytes.map { String(format: "%02x", $0) }.joined() + "\n"
        input.fileHandleForWriting.write(Data(hex.utf8))
        while !buffer.contains(0x0A) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return .tooDeepForPython }  // python is gone: no verdict
            buffer += chunk
        }
        let i = buffer.firstIndex(of: 0x0A)!
        let word = String(decoding: buffer[..<i], as: UTF8.self)
        buffer.removeFirst(i + 1)
        return Verdict(rawValue: word) ?? .tooDeepForPython
    }
}
