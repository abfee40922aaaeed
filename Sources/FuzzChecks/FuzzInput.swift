/// Deterministic choices drawn from a fuzz input's leading bytes, so that one input always
/// replays the same way (libFuzzer and the regression tests must see the same run).
struct FuzzInput {
    private(set) var bytes: UnsafeRawBufferPointer
    private var state: UInt64

    /// Uses the first `seedBytes` bytes (if present) as the seed of the split points.
    init(_ bytes: UnsafeRawBufferPointer, seedBytes: Int = 2) {
        let taken = min(seedBytes, bytes.count)
        var seed: UInt64 = 0x2545_F491_4F6C_DD1D
        for index in 0..<taken { seed = (seed << 8) | UInt64(bytes[index]) }
        state = seed
        self.bytes = UnsafeRawBufferPointer(rebasing: bytes[taken...])
    }

    /// xorshift64*: tiny, deterministic, good enough to scatter split points.
    mutating func next(below bound: Int) -> Int {
        guard bound > 1 else { return 0 }
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return Int((state &* 0x2545_F491_4F6C_DD1D) % UInt64(bound))
    }

    /// Cuts `bytes` into consecutive pieces of pseudo-random sizes (1...64, sometimes 1 byte).
    mutating func pieces() -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        while start < bytes.count {
            let length = next(below: 4) == 0 ? 1 : 1 + next(below: 64)
            let end = min(bytes.count, start + length)
            ranges.append(start..<end)
            start = end
        }
        return ranges
    }
}

/// A property a fuzz target found broken. The fuzz executables trap on it (libFuzzer keeps the
/// input); the regression tests report it.
public struct FuzzFailure: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
