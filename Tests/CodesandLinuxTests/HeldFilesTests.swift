@testable import CodesandLinux
import CodesandCore
import Foundation
import XCTest

/// HeldFiles reads counters through descriptors held open: a number's bytes parsed exactly, files
/// longer than its first read read whole, what is written read back at offset 0.
final class HeldFilesTests: XCTestCase {
    private func file(_ content: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("held-\(UUID().uuidString)").path
        try content.write(toFile: path, atomically: false, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func test_numbers_parse_exactly() throws {
        let files = HeldFiles()
        for (text, want) in [("123\n", Int64(123)), ("0", 0), ("-5\n", -5), ("9223372036854775807\n", .max), ("42 \n", 42)] {
            XCTAssertEqual(try files.readInt(try file(text)), want, text.debugDescription)
        }
        for bad in ["", "\n", "12a\n", "9223372036854775808\n", "1 2\n", "--1", " 7"] {
            XCTAssertThrowsError(try files.readInt(try file(bad)), bad.debugDescription)
        }
    }

    func test_longer_files_are_read_whole_and_writes_read_back() throws {
        let files = HeldFiles()
        let long = (0..<500).map { "key\($0) \($0)" }.joined(separator: "\n") + "\n"
        let path = try file(long)
        XCTAssertEqual(try files.read(path), long)
        XCTAssertEqual(KeyedLines.value(try files.read(path), "key499"), 499)
        let counter = try file("7\n")
        XCTAssertEqual(try files.readInt(counter), 7)
        try files.write(counter, "8\n")
        XCTAssertEqual(try files.readInt(counter), 8, "read again through the same descriptor, from offset 0")
    }
}
