import CodesandProtocol
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// LXD images from codesand's root filesystems: the metadata LXD wants, the upload of a unified
/// image tarball (`metadata.yaml` + `rootfs/`) streamed from disk with `POST /1.0/images`, and aliases.
public enum LXDImage {
    /// The layout codesand's images have (a PID 1, the sandbox user and its home); recorded in the
    /// image's properties as `codesand.image_version`, bumped when that layout changes.
    public static let layoutVersion = "1"

    /// `metadata.yaml`: LXD needs the architecture and the creation date; the properties describe the image
    /// (`lxc image list` shows `description`). Values are quoted: a property is always a string.
    public static func metadataYAML(architecture: String, created: Date, properties: [String: String]) -> String {
        var lines = ["architecture: \(quoted(architecture))", "creation_date: \(Int64(created.timeIntervalSince1970))", "properties:"]
        for key in properties.keys.sorted() { lines.append("  \(key): \(quoted(properties[key]!))") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A YAML double-quoted scalar (JSON's escapes are valid YAML).
    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// The host's architecture as LXD names it (the kernel's: x86_64, aarch64, …).
    public static var hostArchitecture: String {
        var u = utsname()
        uname(&u)
        return withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }
}

extension LXDClient {
    /// Uploads a unified image tarball (uncompressed or gzip) from `path`, read and sent in chunks (an
    /// image of a gigabyte never sits in memory), and waits until LXD has unpacked it. Returns the
    /// image's fingerprint.
    public func uploadImage(tarball path: String, timeout: Duration = .seconds(1800)) async throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw LXDError(what: "image upload", message: "cannot open \(path)")
        }
        defer { try? handle.close() }
        let size = try handle.seekToEnd()
        try handle.seek(toOffset: 0)
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "lxd")
        headers.add(name: "Connection", value: "close")
        headers.add(name: "Content-Length", value: "\(size)")
        headers.add(name: "Content-Type", value: "application/octet-stream")
        headers.add(name: "X-LXD-filename", value: (path as NSString).lastPathComponent)
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: LXDPath.withProject("/1.0/images", project), headers: headers)
        let what = "upload of \(path) (\(size) bytes)"
        let answer: (Int, [UInt8]) = try await withDeadline(timeout, what: what) { [self] in
            let channel = try await connect()
            return try await channel.executeThenClose { inbound, outbound in
                // The writer waits while the socket is not writable: at most a few chunks are in flight.
                // LXD may answer (an error) and close before the body is all sent: its answer is read then
                // too, and says more than the failed write.
                var writeError: (any Error)?
                do {
                    try await outbound.write(.head(head))
                    while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
                        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: chunk))))
                    }
                    try await outbound.write(.end(nil))
                } catch {
                    writeError = error
                }
                var status = 0
                var received = ByteBuffer()
                do {
                    for try await part in inbound {
                        switch part {
                        case .head(let h): status = Int(h.status.code)
                        case .body(var b): received.writeBuffer(&b)
                        case .end: return (status, Array(buffer: received))
                        }
                    }
                } catch where writeError != nil {
                }
                let sent = writeError.map { "; sending the image failed: \($0)" } ?? ""
                throw LXDError(what: what, message: "LXD closed the connection before its response ended" + sent)
            }
        }
        let response = try LXDResponse.parse(status: answer.0, body: answer.1, what: what)
        guard let op = response.operation else { throw LXDError(what: what, message: "LXD started no operation") }
        let result = try await wait(op, timeout: timeout)
        guard result.succeeded else { throw LXDError(what: what, message: result.error.isEmpty ? "failed" : result.error) }
        guard let fingerprint = result.metadata.objectValue?["fingerprint"]?.stringValue else {
            throw LXDError(what: what, message: "no fingerprint in LXD's answer")
        }
        return fingerprint
    }

    /// The fingerprint `alias` points at, or nil when there is no such alias.
    public func imageAlias(_ alias: String) async throws -> String? {
        do {
            return try await call(.GET, "/1.0/images/aliases/" + LXDPath.component(alias)).metadata.objectValue?["target"]?.stringValue
        } catch let e as LXDError where e.isNotFound {
            return nil
        }
    }

    /// Points `alias` at `fingerprint` (made, or moved from the image it named before).
    public func setImageAlias(_ alias: String, to fingerprint: String) async throws {
        if try await imageAlias(alias) != nil {
            _ = try await call(.PUT, "/1.0/images/aliases/" + LXDPath.component(alias),
                           json: .object(["target": .string(fingerprint), "description": .string("codesand image")]))
        } else {
            _ = try await call(.POST, "/1.0/images/aliases",
                           json: .object(["name": .string(alias), "target": .string(fingerprint), "description": .string("codesand image")]))
        }
    }

    /// An image's properties (`metadata.yaml`'s), by fingerprint.
    public func imageProperties(_ fingerprint: String) async throws -> [String: String] {
        let meta = try await call(.GET, "/1.0/images/" + LXDPath.component(fingerprint)).metadata
        return (meta.objectValue?["properties"]?.objectValue ?? [:]).compactMapValues { $0.stringValue }
    }

    /// How many aliases name an image.
    public func imageAliasCount(_ fingerprint: String) async throws -> Int {
        let meta = try await call(.GET, "/1.0/images/" + LXDPath.component(fingerprint)).metadata
        guard case .array(let aliases) = meta.objectValue?["aliases"] else { return 0 }
        return aliases.count
    }

    /// Deletes an image (containers made from it keep their filesystems).
    public func deleteImage(_ fingerprint: String) async throws {
        try await run(.DELETE, "/1.0/images/" + LXDPath.component(fingerprint), timeout: .seconds(300))
    }
}
