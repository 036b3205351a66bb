import CodesandCore
import XCTest

/// The compile cache's pure parts: its hash, its key and its eviction.
final class CompileCacheLogicTests: XCTestCase {
    func test_sha256_matches_the_standards_vectors() {
        XCTAssertEqual(SHA256.hex([UInt8]()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    private func key(language: String = "g++", version: String = "12.2.0", argv: [String] = ["/usr/bin/g++", "-o", "/home/sandbox/main"],
                     env: [String] = ["PATH=/usr/bin"], code: String = "int main(){}", system: [String] = ["host", ""]) -> String {
        CompileCacheKey.make(language: language, version: version, argv: argv, env: env, code: Array(code.utf8), system: system)
    }

    func test_the_key_is_stable_and_names_every_input() {
        let base = key()
        XCTAssertEqual(base, key(), "the same inputs, the same key")
        XCTAssertEqual(base.count, 64)
        let others = [
            key(language: "gcc"), key(version: "12.2.1"), key(argv: ["/usr/bin/g++", "-o", "/home/sandbox/main", "-O2"]),
            key(env: ["PATH=/bin"]), key(code: "int main(){ }"), key(system: ["image", "/var/lib/codesand/image"]),
        ]
        for (i, other) in others.enumerated() { XCTAssertNotEqual(other, base, "input \(i) changed, the key did not") }
        XCTAssertEqual(Set(others).count, others.count)
    }

    func test_fields_cannot_run_into_each_other() {
        XCTAssertNotEqual(key(argv: ["ab", "c"]), key(argv: ["a", "bc"]))
        XCTAssertNotEqual(key(argv: ["a"], env: ["b"]), key(argv: ["a", "b"], env: []))
        XCTAssertNotEqual(key(version: "1", code: "2"), key(version: "12", code: ""))
    }

    func test_eviction_keeps_both_bounds_least_recently_used_first() {
        var index = CompileCacheIndex(maxEntries: 3, maxBytes: 400)
        XCTAssertEqual(index.insert("a", bytes: 50), [])
        XCTAssertEqual(index.insert("b", bytes: 50), [])
        XCTAssertEqual(index.insert("c", bytes: 50), [])
        XCTAssertTrue(index.touch("a"))  // b is now the least recently used
        XCTAssertEqual(index.insert("d", bytes: 50), ["b"])
        XCTAssertEqual(index.count, 3)
        XCTAssertFalse(index.contains("b"))
        // Bytes: 50 (a) + 50 (c) + 50 (d) + 100 + 100 > 400 evicts the oldest until it fits.
        XCTAssertEqual(index.insert("e", bytes: 100), ["c"])
        XCTAssertEqual(index.insert("f", bytes: 100), ["a"])
        XCTAssertLessThanOrEqual(index.totalBytes, 400)
        XCTAssertEqual(index.totalBytes, 250)
        XCTAssertFalse(index.touch("zz"))
    }

    func test_an_entry_past_a_quarter_of_the_bytes_is_not_taken() {
        var index = CompileCacheIndex(maxEntries: 10, maxBytes: 400)
        XCTAssertEqual(index.insert("small", bytes: 100), [])
        XCTAssertEqual(index.insert("big", bytes: 101), ["big"])
        XCTAssertFalse(index.contains("big"))
        XCTAssertTrue(index.contains("small"), "a refused entry evicts nothing")
    }

    func test_replacing_an_entry_counts_its_bytes_once() {
        var index = CompileCacheIndex(maxEntries: 10, maxBytes: 1000)
        _ = index.insert("a", bytes: 100)
        _ = index.insert("a", bytes: 120)
        XCTAssertEqual(index.count, 1)
        XCTAssertEqual(index.totalBytes, 120)
        index.remove("a")
        XCTAssertEqual(index.totalBytes, 0)
    }

    func test_zero_in_either_bound_disables_it() {
        for (entries, bytes) in [(0, Int64(1000)), (10, Int64(0))] {
            var index = CompileCacheIndex(maxEntries: entries, maxBytes: bytes)
            XCTAssertFalse(index.isEnabled)
            XCTAssertEqual(index.insert("a", bytes: 0), ["a"])
            XCTAssertEqual(index.count, 0)
        }
    }
}
