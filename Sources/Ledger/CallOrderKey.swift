/// A call id as `RetryTracker` orders calls by it (ties of `started_at`), without holding the id's
/// string: the gateway's ids (32 lowercase hex digits, `CallIdentity`) as two integers, whose
/// order is the strings' order; any other id as its string.
///
/// Why: the tracker holds every fingerprinted call of the last 150 s, a million and more under
/// sustained load. A held id string is an allocation of its own, made by the event loop that
/// served the call: besides its 80 bytes, it kept that loop's pages from going back to the OS
/// until the window passed.
enum CallOrderKey: Comparable {
    case hex(UInt64, UInt64)
    case other(String)

    init(_ id: String) {
        self = id.utf8.withContiguousStorageIfAvailable(Self.hex(of:)).flatMap { $0 } ?? .other(id)
    }

    /// `.hex` of 32 lowercase hex digits, nil for anything else.
    private static func hex(of bytes: UnsafeBufferPointer<UInt8>) -> CallOrderKey? {
        guard bytes.count == 32 else { return nil }
        var halves: (UInt64, UInt64) = (0, 0)
        for (i, byte) in bytes.enumerated() {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            if i < 16 { halves.0 = halves.0 << 4 | UInt64(digit) } else { halves.1 = halves.1 << 4 | UInt64(digit) }
        }
        return .hex(halves.0, halves.1)
    }

    /// The id it was made from.
    var id: String {
        switch self {
        case .hex(let high, let low): Self.digits(high) + Self.digits(low)
        case .other(let id): id
        }
    }

    private static func digits(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// Before every id (the tracker's probe for the first call at an instant).
    static let lowest = CallOrderKey.other("")

    static func < (a: CallOrderKey, b: CallOrderKey) -> Bool {
        switch (a, b) {
        case (.hex(let a0, let a1), .hex(let b0, let b1)): (a0, a1) < (b0, b1)
        case (.other(let a), .other(let b)): a < b
        case (_, .other(let b)) where b.isEmpty: false
        case (.other(let a), _) where a.isEmpty: true
        default: a.id < b.id  // an id of each kind: rare (a ledger written by something else)
        }
    }
}
