import NIOCore

/// A stable 64-bit fingerprint of a request body, stored with each call so that reports can
/// find retries (the same user sending the same body again within seconds).
///
/// Not a cryptographic hash: it only has to tell bodies apart with a negligible collision rate,
/// be the same in every process and on every run (Swift's `Hasher` is seeded per process), and
/// cost well under a microsecond for a typical prompt, since it runs on the hot path. It mixes
/// 8 bytes per step (a multiply-xorshift of each little-endian word, as in wyhash/murmur's
/// finalizer) and folds in the length, so bodies that differ only by trailing zero bytes differ.
public enum RequestFingerprint {
    public static func of(_ bytes: UnsafeRawBufferPointer) -> Int64 {
        var hash: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
        var offset = 0
        while offset + 8 <= bytes.count {
            let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            hash = mix(hash ^ word)
            offset += 8
        }
        if offset < bytes.count {
            var tail: UInt64 = 0
            for index in offset..<bytes.count {
                tail |= UInt64(bytes[index]) << (UInt64(index - offset) * 8)
            }
            hash = mix(hash ^ tail)
        }
        return Int64(bitPattern: mix(hash))
    }

    public static func of(_ buffer: ByteBuffer) -> Int64 {
        buffer.withUnsafeReadableBytes { of($0) }
    }

    public static func of(_ bytes: [UInt8]) -> Int64 {
        bytes.withUnsafeBytes { of($0) }
    }

    /// A bijective 64-bit mixer (murmur3's fmix64).
    @inline(__always)
    private static func mix(_ value: UInt64) -> UInt64 {
        var x = value
        x ^= x >> 33
        x = x &* 0xFF51_AFD7_ED55_8CCD
        x ^= x >> 33
        x = x &* 0xC4CE_B9FE_1A85_EC53
        x ^= x >> 33
        return x
    }
}
