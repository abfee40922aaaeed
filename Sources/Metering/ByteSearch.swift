/// Word-at-a-time byte searches for the scanners' inner loops: eight bytes are tested with a
/// few integer operations ("SWAR"), then the exact position is found bytewise.
enum ByteSearch {
    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highs: UInt64 = 0x8080_8080_8080_8080

    /// Non-zero iff some byte of `word` equals `byte` (exact as to whether, not which).
    @inline(__always)
    private static func has(_ word: UInt64, _ byte: UInt8) -> UInt64 {
        let x = word ^ (ones &* UInt64(byte))
        return (x &- ones) & ~x & highs
    }

    /// Non-zero iff some byte of `word` is below `limit` (limit ≤ 128).
    @inline(__always)
    private static func hasBelow(_ word: UInt64, _ limit: UInt8) -> UInt64 {
        (word &- ones &* UInt64(limit)) & ~word & highs
    }

    /// First index at or after `start` holding `"`, `\`, a control character or a non-ASCII
    /// byte (which starts a UTF-8 sequence to validate); `count` if none.
    @inline(__always)
    static func stringSpecial(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        let count = bytes.count
        var i = start
        while i + 8 <= count {
            let word = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            if has(word, 0x22) | has(word, 0x5C) | hasBelow(word, 0x20) | (word & 0x8080_8080_8080_8080) != 0 { break }
            i += 8
        }
        while i < count {
            let byte = base.load(fromByteOffset: i, as: UInt8.self)
            if byte == 0x22 || byte == 0x5C || byte < 0x20 || byte >= 0x80 { return i }
            i += 1
        }
        return count
    }

    /// First index at or after `start` holding `\n` or `\r`; `count` if none.
    @inline(__always)
    static func lineEnd(_ bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        let count = bytes.count
        var i = start
        while i + 8 <= count {
            let word = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            if has(word, 0x0A) | has(word, 0x0D) != 0 { break }
            i += 8
        }
        while i < count {
            let byte = base.load(fromByteOffset: i, as: UInt8.self)
            if byte == 0x0A || byte == 0x0D { return i }
            i += 1
        }
        return count
    }

    /// First index at or after `start` holding `byte`; `count` if none.
    @inline(__always)
    static func first(_ byte: UInt8, in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        guard let base = bytes.baseAddress else { return 0 }
        let count = bytes.count
        var i = start
        while i + 8 <= count {
            if has(base.loadUnaligned(fromByteOffset: i, as: UInt64.self), byte) != 0 { break }
            i += 8
        }
        while i < count {
            if base.load(fromByteOffset: i, as: UInt8.self) == byte { return i }
            i += 1
        }
        return count
    }

    /// Whether the bytes are exactly the ASCII text.
    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ text: StaticString) -> Bool {
        let count = text.utf8CodeUnitCount
        guard bytes.count == count else { return false }
        let literal = text.utf8Start
        for k in 0..<count where bytes[k] != literal[k] { return false }
        return true
    }
}
