import Crypto

/// Client API keys: a public id shown in lists and a secret shown once, stored only as a hash.
public enum APIKeySecret {
    public static let idPrefix = "key_"
    public static let secretPrefix = "tk-"
    /// 43 base62 characters carry 43 × log2(62) ≈ 256.03 bits.
    public static let secretBodyLength = 43
    static let base62 = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

    /// A fresh key: id `key_` + 12 lowercase hex, secret `tk-` + 43 base62 characters.
    public static func generate() -> (id: String, secret: String) {
        var rng = SystemRandomNumberGenerator()
        return generate(using: &rng)
    }

    static func generate<R: RandomNumberGenerator>(using rng: inout R) -> (id: String, secret: String) {
        let hex = Array("0123456789abcdef")
        let id = idPrefix + String((0..<12).map { _ in hex[Int.random(in: 0..<16, using: &rng)] })
        // `Int.random(in:)` rejects biased draws, so every character is uniform over 62.
        let body = String((0..<secretBodyLength).map { _ in base62[Int.random(in: 0..<62, using: &rng)] })
        return (id, secretPrefix + body)
    }

    /// Lowercase hex SHA-256 of the secret, the only form stored.
    ///
    /// Unsalted and fast on purpose: secrets are 256-bit random, so there is no dictionary to
    /// precompute and brute force is hopeless; salting or a slow KDF would only slow every request.
    private static let hexDigits = Array("0123456789abcdef".utf8)

    public static func hash(_ secret: String) -> String {
        // This runs on every call (identification): the secret is hashed where it lies and the
        // hex written straight into the string's storage (one allocation for the result).
        var secret = secret
        let digest = secret.withUTF8 { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
        return String(unsafeUninitializedCapacity: 2 * SHA256.byteCount) { hex in
            digest.withUnsafeBytes { bytes in
                for (i, byte) in bytes.enumerated() {
                    hex[2 * i] = hexDigits[Int(byte >> 4)]
                    hex[2 * i + 1] = hexDigits[Int(byte & 0x0F)]
                }
            }
            return 2 * SHA256.byteCount
        }
    }

    /// Cheap shape check before any lookup: `tk-` followed by exactly 43 base62 characters.
    public static func looksValid(_ secret: String) -> Bool {
        let utf8 = secret.utf8
        guard utf8.count == secretPrefix.utf8.count + secretBodyLength, secret.hasPrefix(secretPrefix) else { return false }
        return utf8.dropFirst(secretPrefix.utf8.count).allSatisfy { byte in
            (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
        }
    }

    /// Shape check for a public key id: `key_` followed by 12 lowercase hex digits.
    public static func looksLikeKeyId(_ id: String) -> Bool {
        guard id.utf8.count == idPrefix.utf8.count + 12, id.hasPrefix(idPrefix) else { return false }
        return id.utf8.dropFirst(idPrefix.utf8.count).allSatisfy { byte in
            (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
        }
    }
}
