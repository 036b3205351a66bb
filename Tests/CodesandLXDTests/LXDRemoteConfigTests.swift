import CodesandCore
import CodesandProtocol
import Foundation
import XCTest

@testable import CodesandLXD

/// A remote LXD's keys (`url`, `client_cert`, `client_key`, `fingerprint`), the fingerprint's
/// digest, and what runs on a remote LXD look like, without LXD.
final class LXDRemoteConfigTests: XCTestCase {
    func test_sha256_matches_the_standards_vectors() {
        XCTAssertEqual(LXDFingerprint.hex(SHA256.hash([])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(LXDFingerprint.hex(SHA256.hash(Array("abc".utf8))),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // Two blocks: the padding spills over.
        XCTAssertEqual(LXDFingerprint.hex(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(LXDFingerprint.hex(SHA256.hash(Array(repeating: UInt8(ascii: "a"), count: 1_000_000))),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func test_fingerprints_are_read_with_or_without_colons_in_either_case() throws {
        let plain = "7c21828ef642586088af13eac95935603ba3e8963b172904d82985dc91599111"
        let bytes = try XCTUnwrap(LXDConfig.parseFingerprint(plain))
        XCTAssertEqual(bytes.count, 32)
        XCTAssertEqual(LXDFingerprint.hex(bytes), plain)
        let colons = stride(from: 0, to: 64, by: 2).map { i in
            String(plain.uppercased().dropFirst(i).prefix(2))
        }.joined(separator: ":")
        XCTAssertEqual(LXDConfig.parseFingerprint(colons), bytes)
        XCTAssertEqual(LXDConfig.parseFingerprint(" \(plain) "), bytes)
        for bad in ["", String(plain.dropLast()), plain + "0", String(plain.dropLast()) + "g",
                    "7c2:1828ef642586088af13eac95935603ba3e8963b172904d82985dc91599111", "sha256:" + plain,
                    String(colons.dropLast(3))] {
            XCTAssertNil(LXDConfig.parseFingerprint(bad), bad)
        }
    }

    func test_urls_are_https_host_and_port() {
        XCTAssertEqual(LXDConfig.parseURL("https://127.0.0.21:8443")?.host, "127.0.0.21")
        XCTAssertEqual(LXDConfig.parseURL("https://127.0.0.21:8443")?.port, 8443)
        XCTAssertEqual(LXDConfig.parseURL("https://lxd.example.org")?.port, 8443)
        XCTAssertEqual(LXDConfig.parseURL("https://lxd-1.example.org:9443/")?.port, 9443)
        XCTAssertEqual(LXDConfig.parseURL("https://[::1]:8443")?.host, "::1")
        for bad in ["http://127.0.0.1:8443", "127.0.0.1:8443", "https://", "https://h:0", "https://h:65536", "https://h:x",
                    "https://h:8443/1.0", "https://user@h:8443", "https://[::1", "https://h h:8443"] {
            XCTAssertNil(LXDConfig.parseURL(bad), bad)
        }
    }

    /// PEM-looking files for the config's checks (which read, not parse, them).
    func pemFiles() throws -> (cert: String, key: String) {
        let dir = NSTemporaryDirectory() + "codesand-remotecfg-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        try "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".write(toFile: dir + "/c.crt", atomically: true, encoding: .utf8)
        try "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n".write(toFile: dir + "/c.key", atomically: true, encoding: .utf8)
        return (dir + "/c.crt", dir + "/c.key")
    }

    func remoteConfig(cert: String, key: String, fingerprint: String = String(repeating: "ab", count: 32),
                      url: String = "https://127.0.0.21:8443", backend: String = "lxd") -> String {
        """
        [sandbox]
        backend = "\(backend)"
        [lxd]
        url = "\(url)"
        client_cert = "\(cert)"
        client_key = "\(key)"
        fingerprint = "\(fingerprint)"
        image = "codesand-test"
        """
    }

    func test_a_remote_lxd_config_is_read_and_each_bad_key_is_named() throws {
        let (cert, key) = try pemFiles()
        let cfg = try ConfigLoader.load(fileText: remoteConfig(cert: cert, key: key))
        XCTAssertTrue(cfg.sandbox.lxd.isRemote)
        XCTAssertEqual(cfg.sandbox.lxd.url, "https://127.0.0.21:8443")
        let cases: [(String, String, String)] = [
            (remoteConfig(cert: cert, key: key, url: "http://127.0.0.21:8443"), "lxd.url", "https://HOST:PORT"),
            (remoteConfig(cert: "", key: key), "lxd.client_cert", "needs it"),
            (remoteConfig(cert: cert, key: "relative.key"), "lxd.client_key", "absolute path"),
            (remoteConfig(cert: cert, key: key, fingerprint: ""), "lxd.fingerprint", "openssl x509"),
            (remoteConfig(cert: cert, key: key, fingerprint: "abcd"), "lxd.fingerprint", "64 hex digits"),
            (remoteConfig(cert: cert + ".missing", key: key), "lxd.client_cert", "no such file"),
            (remoteConfig(cert: key, key: key), "lxd.client_cert", "not a PEM certificate"),
            (remoteConfig(cert: cert, key: cert), "lxd.client_key", "not a PEM private key"),
        ]
        for (text, key, words) in cases {
            XCTAssertThrowsError(try ConfigLoader.load(fileText: text), key) { error in
                XCTAssertEqual((error as? ConfigError)?.key, key, "\(error)")
                XCTAssertTrue("\(error)".contains(words), "\(error)")
            }
        }
        // The files are the LXD backend's business: a native daemon's config may name missing ones.
        XCTAssertNoThrow(try ConfigLoader.load(fileText: remoteConfig(cert: cert + ".missing", key: key, backend: "native")))
    }

    func test_a_missing_or_unparsable_key_is_an_error_naming_its_key_at_start() throws {
        let (cert, key) = try pemFiles()
        var lxd = LXDConfig()
        lxd.url = "https://127.0.0.21:8443"
        lxd.clientCert = cert
        lxd.clientKey = key
        lxd.fingerprint = String(repeating: "ab", count: 32)
        // The config's check only looks for the PEM markers; TLS reads them.
        XCTAssertThrowsError(try LXDTransport.forConfig(lxd)) { error in
            XCTAssertEqual((error as? LXDError)?.what, "lxd.client_cert", "\(error)")
        }
        XCTAssertFalse(try LXDTransport.forConfig(LXDConfig()).isRemote, "no url: the unix socket")
    }

    func test_runs_on_a_remote_lxd_kill_what_their_program_leaves_behind() throws {
        var lxd = LXDConfig()
        lxd.image = "x"
        let spec = LXDInstanceSpec(lxd: lxd, home: "/home/sandbox", tmpfsBytes: 1 << 20, tmpfsInodes: 100,
                                   limits: try CodesandConfig.defaults().defaultLimits)
        let control = LXDRemoteControl(client: LXDClient(socketPath: "/nonexistent"), container: "c-0", spec: spec)
        let command = LXDExecCommand(argv: ["/bin/sh", "/home/sandbox/main.sh", "a b"], env: [], uid: 1000, gid: 1000, cwd: "/home/sandbox")
        let wrapped = control.command(command)
        // The program's argv is the shell's "$@": passed through, never parsed by the shell.
        XCTAssertEqual(wrapped.argv, ["/bin/sh", "-c", LXDRemoteControl.wrapper, "sh", "/bin/sh", "/home/sandbox/main.sh", "a b"])
        XCTAssertTrue(LXDRemoteControl.wrapper.hasPrefix("\"$@\";"))
        XCTAssertEqual(wrapped.uid, 1000)
        XCTAssertEqual(command.detachedRequestBody.objectValue?["wait-for-websocket"], .bool(false))
        XCTAssertEqual(command.detachedRequestBody.objectValue?["record-output"], .bool(false))
    }
}
