import CodesandCore
import Foundation
import XCTest

@testable import CodesandLinux

#if canImport(Glibc)
import Glibc
#endif

/// The key's system part: another image, or another compiler file, is another key.
final class CompileCacheKeyTests: XCTestCase {
    func test_another_image_or_compiler_file_is_another_key() throws {
        let base = NSTemporaryDirectory() + "codesand-cckey-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let image = base + "/image"
        try FileManager.default.createDirectory(atPath: image + "/usr/bin", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: image + "/usr/bin/gcc", contents: Data("not the host's gcc".utf8))
        var config = try CodesandConfig.defaults()
        config.sandbox.stateDir = base + "/state"
        config.sandbox.compileCacheBytes = 1 << 20
        let hostLayout = try SandboxLayout(config: config.sandbox, poolSize: 1, logger: testLogger)
        var imageConfig = config.sandbox
        imageConfig.rootfs = "image"
        imageConfig.image = image
        let imageLayout = try SandboxLayout(config: imageConfig, poolSize: 1, logger: testLogger)
        let cache = try XCTUnwrap(CompileCache.open(config: config.sandbox, logger: testLogger))
        var job = SandboxJob(argv: ["/home/sandbox/main"], env: ["PATH=/usr/bin"], fileName: "main.c",
                             code: Array("int main(){}".utf8), stdin: [], limits: config.defaultLimits)
        var compile = CompileStage(argv: ["/usr/bin/gcc", "-o", "/home/sandbox/main", "/home/sandbox/main.c"], limits: config.defaultLimits)
        compile.output = "main"
        compile.language = "gcc"
        compile.version = "12.2.0"
        job.compile = compile
        let onHost = try XCTUnwrap(cache.key(for: job, layout: hostLayout))
        XCTAssertEqual(cache.key(for: job, layout: hostLayout), onHost, "stable")
        let inImage = try XCTUnwrap(cache.key(for: job, layout: imageLayout))
        XCTAssertNotEqual(inImage, onHost)
        // The image's compiler replaced (an upgrade between reloads): another key.
        usleep(10_000)
        FileManager.default.createFile(atPath: image + "/usr/bin/gcc", contents: Data("a newer gcc".utf8))
        XCTAssertNotEqual(cache.key(for: job, layout: imageLayout), inImage)
        // No compiler file in the image, no output named: nothing is cached.
        try FileManager.default.removeItem(atPath: image + "/usr/bin/gcc")
        XCTAssertNil(cache.key(for: job, layout: imageLayout))
        job.compile?.output = ""
        XCTAssertNil(cache.key(for: job, layout: hostLayout))
    }
}
