import Foundation

/// The `[lxd]` keys of a remote LXD: `url` (https://HOST:PORT), the client certificate and key LXD
/// trusts, and the server certificate's pinned SHA-256 `fingerprint`. What can be known without
/// connecting is checked here, so `codesandd --check-config` names it: the URL's form, the
/// fingerprint's, and (for the LXD backend) that the PEM files are there, readable and PEM.
extension LXDConfig {
    /// A remote LXD: `url` is set (the unix `socket` is then unused).
    public var isRemote: Bool { !url.isEmpty }

    /// `https://HOST:PORT` split up; HOST may be a name, an IPv4 address or a bracketed IPv6 one.
    /// The port defaults to LXD's 8443.
    public static func parseURL(_ url: String) -> (host: String, port: Int)? {
        guard url.hasPrefix("https://") else { return nil }
        var rest = Substring(url.dropFirst("https://".count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.isEmpty, !rest.contains("/"), !rest.contains("@"), !rest.contains("?") else { return nil }
        let host: Substring, portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            guard after.isEmpty || after.hasPrefix(":") else { return nil }
            portText = after.isEmpty ? nil : after.dropFirst()
        } else {
            let parts = rest.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            host = parts[0]
            portText = parts.count == 2 ? parts[1] : nil
        }
        guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || ".-:".contains($0)) }) else { return nil }
        var port = 8443
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p), portText.allSatisfy(\.isNumber) else { return nil }
            port = p
        }
        return (String(host), port)
    }

    /// A SHA-256 fingerprint as LXD and openssl print it: 64 hex digits, plain or in colon-separated
    /// pairs (`AB:CD:…`), either case. Nil when it is not one.
    public static func parseFingerprint(_ text: String) -> [UInt8]? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let hex: String
        if trimmed.contains(":") {
            let pairs = trimmed.split(separator: ":", omittingEmptySubsequences: false)
            guard pairs.count == 32, pairs.allSatisfy({ $0.count == 2 }) else { return nil }
            hex = pairs.joined()
        } else {
            hex = trimmed
        }
        guard hex.count == 64, hex.allSatisfy(\.isHexDigit) else { return nil }
        var bytes: [UInt8] = []
        var i = hex.startIndex
        while i < hex.endIndex {
            let j = hex.index(i, offsetBy: 2)
            bytes.append(UInt8(hex[i..<j], radix: 16)!)
            i = j
        }
        return bytes
    }

    /// The form of `url` and of what comes with it (called on every load).
    func checkRemoteKeys() throws {
        guard isRemote else { return }
        guard Self.parseURL(url) != nil else {
            throw ConfigError(key: "lxd.url", problem: "must be https://HOST:PORT (e.g. https://10.0.0.5:8443), got \"\(url)\"")
        }
        for (key, value) in [("lxd.client_cert", clientCert), ("lxd.client_key", clientKey)] {
            guard value.hasPrefix("/"), !value.split(separator: "/").contains("..") else {
                throw ConfigError(key: key, problem: value.isEmpty ? "a remote LXD (lxd.url) needs it: the PEM file LXD trusts"
                                  : "must be an absolute path without \"..\", got \"\(value)\"")
            }
        }
        guard Self.parseFingerprint(fingerprint) != nil else {
            throw ConfigError(key: "lxd.fingerprint", problem: fingerprint.isEmpty
                ? "a remote LXD (lxd.url) needs the server certificate's SHA-256 (64 hex digits; on the LXD host: "
                  + "openssl x509 -noout -fingerprint -sha256 -in /var/lib/lxd/server.crt)"
                : "must be a SHA-256: 64 hex digits, plain or as colon-separated pairs, got \"\(fingerprint)\"")
        }
    }

    /// The client certificate and key are readable PEM files (checked when the LXD backend is used).
    func checkRemoteFiles() throws {
        guard isRemote else { return }
        for (key, path, marker, what) in [("lxd.client_cert", clientCert, "-----BEGIN CERTIFICATE-----", "a PEM certificate"),
                                          ("lxd.client_key", clientKey, "PRIVATE KEY-----", "a PEM private key")] {
            guard let data = FileManager.default.contents(atPath: path) else {
                let problem = FileManager.default.fileExists(atPath: path) ? "cannot be read (permissions?)" : "no such file"
                throw ConfigError(key: key, problem: "\(path): \(problem)")
            }
            guard String(decoding: data, as: UTF8.self).contains(marker) else {
                throw ConfigError(key: key, problem: "\(path) is not \(what) (no \"\(marker)\" line)")
            }
        }
    }
}
