@testable import CodesandServer
import CodesandCore
import CodesandProtocol
import Foundation
import NIOCore
import NIOEmbedded
import XCTest

/// The fuzz target for framing and request decoding: seeded random mutations of the corpus in
/// FuzzCorpus/, each input checked three ways:
///
/// 1. framing: LineFrameDecoder, fed the input in two random chunkings, makes the frames of
///    FrameModel (lines, an over-long line's report and end, the last line without "\n");
/// 2. decoding: every non-blank line through the real Dispatcher gets exactly one well-formed
///    JSON-RPC reply, or none for a notification; -32700 exactly for what Python's strict json
///    module refuses; ids and batches consistent with Foundation's reading of the line
///    (ReplyOracle); within a bounded time;
/// 3. the socket: the input sent on a real connection to the real server, which is then
///    half-closed, gets exactly as many reply lines, each well-formed, and then the close.
///
/// Budget: CODESAND_FUZZ_SECONDS (default 60); seed: CODESAND_FUZZ_SEED (default fixed, printed, so
/// a run is reproducible; any number explores other inputs). A failure prints the seed, the input's
/// number and its bytes (also written to /tmp) to add to the corpus.
final class FuzzTests: XCTestCase {
    static let defaultSeed: UInt64 = 0x0C0D_E5A4_D13F_0013

    func corpus() throws -> [[UInt8]] {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("FuzzCorpus")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0 != "README.md" }.sorted()
        return try files.map { Array(try Data(contentsOf: dir.appendingPathComponent($0))) }
    }

    func test_fuzz_framing_and_request_decoding() async throws {
        let env = ProcessInfo.processInfo.environment
        let seconds = env["CODESAND_FUZZ_SECONDS"].flatMap(Double.init) ?? 60
        let seed = env["CODESAND_FUZZ_SEED"].flatMap { UInt64($0) } ?? Self.defaultSeed
        print("fuzz: seed \(seed) (CODESAND_FUZZ_SEED), budget \(seconds) s (CODESAND_FUZZ_SECONDS)")
        let seeds = try corpus()
        XCTAssertGreaterThanOrEqual(seeds.count, 15, "the corpus is in Tests/CodesandServerTests/FuzzCorpus")
        let mutator = FuzzMutator(seeds: seeds, maxLine: FuzzServer.maxLine)
        let server = try await FuzzServer()
        let strict = try StrictJSON()
        var rng = FuzzRandom(seed: seed)
        let end = ContinuousClock.now + .seconds(seconds)
        var count = 0, lines = 0, replies = 0, overlong = 0
        // The seeds as they are first, then mutations until the budget is spent.
        while count < seeds.count || ContinuousClock.now < end {
            let input = count < seeds.count ? seeds[count] : mutator.input(&rng)
            let report = await check(input, server: server, strict: strict, rng: &rng)
            lines += report.lines
            replies += report.replies
            overlong += report.overlong ? 1 : 0
            if !report.problems.isEmpty {
                let file = "/tmp/codesand-fuzz-failure-\(seed)-\(count).bin"
                _ = FileManager.default.createFile(atPath: file, contents: Data(input))
                XCTFail("fuzz input \(count) (seed \(seed), saved to \(file)): \(report.problems.joined(separator: "; "))\n"
                        + "input: \(String(decoding: input.prefix(500), as: UTF8.self).debugDescription)")
                break
            }
            count += 1
        }
        print("fuzz: \(count) inputs, \(lines) lines, \(replies) replies, \(overlong) with an over-long line")
        XCTAssertGreaterThan(count, seeds.count, "no mutated input was tried within the budget")
        await server.stop()
    }

    struct Report {
        var lines = 0, replies = 0, overlong = false
        var problems: [String] = []
    }

    func check(_ input: [UInt8], server: FuzzServer, strict: StrictJSON, rng: inout FuzzRandom) async -> Report {
        var report = Report()
        let model = FrameModel.frames(input, maxLine: FuzzServer.maxLine)
        report.overlong = model.contains(.tooLong)
        // 1. Framing, in two chunkings.
        for _ in 0..<2 {
            let frames = decoderFrames(input, chunks: chunking(input.count, &rng))
            if frames != model { report.problems.append("framing: \(frames.count) frames, the model has \(model.count)") }
        }
        // 2. Decoding, line by line.
        var expected = report.overlong ? 1 : 0
        for case .line(let line) in model where !FrameModel.isBlank(line) {
            report.lines += 1
            let start = ContinuousClock.now
            let reply = await server.dispatcher.handle(line: line, peer: PeerInfo(pid: 1, uid: 0, gid: 0))
            let took = ContinuousClock.now - start
            if took > .seconds(2) { report.problems.append("a line took \(took)") }
            if reply != nil { expected += 1 }
            report.problems += ReplyOracle.problems(line: line, reply: reply, verdict: strict.verdict(line)).map { "line \(report.lines): \($0)" }
        }
        // 3. The socket: as many replies, well-formed, then the close.
        guard let received = server.exchange(input) else {
            report.problems.append("the server did not close the connection after the input")
            return report
        }
        if !received.isEmpty && received.last != 0x0A { report.problems.append("the last reply line has no newline") }
        var replyCount = 0
        for line in received.split(separator: 0x0A) {
            guard let value = ReplyOracle.parseReply(Data(line)) else {
                report.problems.append("a line over the socket is not JSON")
                continue
            }
            if let note = value as? [String: Any], note["method"] != nil {  // a stream run's output
                report.problems += ReplyOracle.outputNotification(note)
                continue
            }
            replyCount += 1
            report.problems += ((value as? [Any]) ?? [value]).flatMap(ReplyOracle.response)
        }
        report.replies = replyCount
        if replyCount != expected { report.problems.append("\(replyCount) replies over the socket, \(expected) expected") }
        return report
    }

    /// Random cut points: one byte at a time, a few big pieces, or anything between.
    func chunking(_ count: Int, _ rng: inout FuzzRandom) -> [Int] {
        var sizes: [Int] = [], left = count
        let style = rng.below(3)
        while left > 0 {
            let n = style == 0 ? 1 : style == 1 ? 1 + rng.below(max(1, count / 2 + 1)) : 1 + rng.below(64)
            sizes.append(min(n, left))
            left -= n
        }
        return sizes
    }

    func decoderFrames(_ input: [UInt8], chunks: [Int]) -> [FrameModel.Frame] {
        let ch = EmbeddedChannel()
        var out: [FrameModel.Frame] = []
        func drain() {
            while let frame = try? ch.readInbound(as: LineFrame.self) {
                switch frame {
                case .line(let b): out.append(.line(Array(b.readableBytesView)))
                case .tooLong: out.append(.tooLong)
                case .tooLongEnded: out.append(.tooLongEnded)
                }
            }
        }
        do {
            try ch.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineFrameDecoder(maxLength: FuzzServer.maxLine)))
            var offset = 0
            for size in chunks {
                try ch.writeInbound(ByteBuffer(bytes: input[offset..<offset + size]))
                offset += size
                drain()
            }
            _ = try ch.finish()
            drain()
        } catch {
            out.append(.line(Array("decoder threw \(error)".utf8)))
        }
        return out
    }
}
