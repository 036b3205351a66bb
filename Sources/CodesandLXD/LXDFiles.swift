/// The files API: a snippet's code into the container, owned by the sandbox user.
extension LXDClient {
    /// Writes `bytes` to `path` in `instance` (a running one: the file lands in its mounts, e.g. the
    /// home tmpfs). LXD needs the octet-stream type (a form type writes an empty file with 200 OK),
    /// and applies owner and mode only when it creates the file.
    public func push(_ bytes: [UInt8], to path: String, in instance: String, uid: Int64, gid: Int64, mode: Int = 0o644) async throws {
        let headers = [("Content-Type", "application/octet-stream"), ("X-LXD-uid", "\(uid)"), ("X-LXD-gid", "\(gid)"),
                       ("X-LXD-mode", "0" + String(mode, radix: 8)), ("X-LXD-type", "file"), ("X-LXD-write", "overwrite")]
        let (status, body) = try await send(.POST, LXDPath.files(instance, path: path), body: bytes, headers: headers)
        _ = try LXDResponse.parse(status: status, body: body, what: "push \(path) into \(instance)")
    }

}
