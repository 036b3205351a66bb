import CodesandCore

/// A certificate's SHA-256 fingerprint (of its DER bytes), as pinned by `lxd.fingerprint`: LXD's
/// server certificate is self-signed, so it is recognised by this alone. Printed as LXD prints it
/// (`lxc info`, `lxc config trust list`): lowercase hex, no colons.
enum LXDFingerprint {
    static func of(der: [UInt8]) -> [UInt8] { SHA256.hash(der) }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }
}
