import ArgumentParser
import CodesandLXD
import CodesandSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `codesand image build --lxd ALIAS`: a root filesystem of `codesand image build` as an LXD image.
/// The rootfs gets what a container needs and a debootstrap minbase lacks — a PID 1 and the sandbox
/// user — then it is packed with tar (an argv, no shell) into one image tarball on disk, streamed to
/// LXD (`POST /1.0/images`), and the alias is pointed at it.
struct LXDImageExport {
    var rootfs: String
    var alias: String
    var socket: String
    var uid: Int64
    var gid: Int64
    var home: String
    var properties: [String: String]

    /// The PID 1 of the containers: busybox's init (from Debian's busybox-static). With an inittab that
    /// names only a shutdown action it starts nothing, reaps every orphan, and halts on SIGPWR (LXD's
    /// stop); codesand itself stops and restores containers by force, so its slow halt never matters.
    static let busyboxCandidates = ["/bin/busybox", "/usr/bin/busybox"]
    static let initDir = "/usr/lib/codesand"

    func run() async throws {
        try addInit()
        try addSandboxUser()
        let work = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: work) }
        let yaml = LXDImage.metadataYAML(architecture: LXDImage.hostArchitecture, created: Date(), properties: properties)
        try yaml.write(toFile: work + "/metadata.yaml", atomically: true, encoding: .utf8)
        let tarball = work + "/image.tar"
        // One unified tarball: metadata.yaml and the tree as rootfs/ (hard-link targets renamed too,
        // symlink targets left alone); /dev, /proc, /sys and /run are LXC's to fill.
        let tar = ["/bin/tar", "--numeric-owner", "--xattrs", "-cf", tarball,
                   "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./run/*",
                   "--transform=s,^\\.,rootfs,S", "-C", work, "metadata.yaml", "-C", rootfs, "."]
        printError("codesand: packing \(rootfs) for LXD")
        let status = try spawnAndWait(tar)
        guard status == 0 else { throw ValidationError("tar failed (status \(status))") }
        let client = LXDClient(socketPath: socket)
        printError("codesand: uploading the image to LXD at \(socket)")
        let fingerprint = try await client.uploadImage(tarball: tarball)
        printError("codesand: LXD unpacked the image: \(fingerprint)")
        let previous = try await client.imageAlias(alias)
        try await client.setImageAlias(alias, to: fingerprint)
        if let previous, previous != fingerprint {
            try await removeIfOrphan(previous, client)
        }
        printOut("LXD image \(alias) = \(fingerprint) (from \(rootfs))")
    }

    /// /sbin/init, unless the rootfs has one (a full Debian with systemd): busybox's init, linked
    /// from a copy of the host's static busybox.
    func addInit() throws {
        let sbinInit = rootfs + "/sbin/init"
        var st = stat()
        if lstat(sbinInit, &st) == 0 { return }
        guard let busybox = Self.busyboxCandidates.first(where: { access($0, X_OK) == 0 }) else {
            throw ValidationError("the rootfs has no /sbin/init and the host no busybox, whose init the image would get: "
                                  + "apt-get install busybox-static")
        }
        let fm = FileManager.default
        try fm.createDirectory(atPath: rootfs + Self.initDir, withIntermediateDirectories: true)
        let copy = rootfs + Self.initDir + "/busybox"
        try? fm.removeItem(atPath: copy)
        try fm.copyItem(atPath: busybox, toPath: copy)
        chmod(copy, 0o755)
        try fm.createDirectory(atPath: rootfs + "/sbin", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: sbinInit, withDestinationPath: Self.initDir + "/busybox")
        let inittab = rootfs + "/etc/inittab"
        if !fm.fileExists(atPath: inittab) {
            try "::shutdown:/bin/sync\n".write(toFile: inittab, atomically: true, encoding: .utf8)
        }
    }

    /// The sandbox user (uid/gid of `[lxd]`) in /etc/passwd and /etc/group, and its home.
    func addSandboxUser() throws {
        let passwd = rootfs + "/etc/passwd", group = rootfs + "/etc/group"
        let users = (try? String(contentsOfFile: passwd, encoding: .utf8)) ?? ""
        if !Self.hasEntry(users, id: uid) {
            try append("sandbox:x:\(uid):\(gid):codesand sandbox:\(home):/bin/sh\n", to: passwd, after: users)
        }
        let groups = (try? String(contentsOfFile: group, encoding: .utf8)) ?? ""
        if !Self.hasEntry(groups, id: gid) {
            try append("sandbox:x:\(gid):\n", to: group, after: groups)
        }
        let dir = rootfs + home
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        guard chown(dir, uid_t(uid), gid_t(gid)) == 0, chmod(dir, 0o700) == 0 else {
            throw ValidationError("cannot give \(dir) to \(uid):\(gid): \(String(cString: strerror(errno)))")
        }
    }

    /// True if a passwd or group file has an entry whose third field is `id`.
    static func hasEntry(_ file: String, id: Int64) -> Bool {
        file.split(separator: "\n").contains { line in
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            return f.count > 2 && f[2] == "\(id)"
        }
    }

    private func append(_ line: String, to path: String, after text: String) throws {
        let sep = text.isEmpty || text.hasSuffix("\n") ? "" : "\n"
        try (text + sep + line).write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// The image the alias named before, deleted if codesand made it and no alias names it now.
    private func removeIfOrphan(_ fingerprint: String, _ client: LXDClient) async throws {
        guard let props = try? await client.imageProperties(fingerprint), props["codesand.image_version"] != nil,
              let aliases = try? await client.imageAliasCount(fingerprint), aliases == 0 else { return }
        try await client.deleteImage(fingerprint)
        printError("codesand: deleted the image \(alias) named before (\(fingerprint))")
    }

    private func makeTemporaryDirectory() throws -> String {
        var template = Array("/var/tmp/codesand-lxd-image-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw ValidationError("mkdtemp in /var/tmp: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

    private func spawnAndWait(_ argv: [String]) throws -> Int32 {
        do {
            return Spawn.waitStatus(try Spawn(argv).start())
        } catch {
            throw ValidationError("\(error)")
        }
    }
}
