import Ledger
import Synchronization

/// Identifiers of one call: the ledger row id and the correlation id returned as `x-request-id`.
///
/// Both start with the time in microseconds (hex), so that ledger index inserts land on the
/// same few pages: measured in the writer, random ids cost about three times the CPU per row.
enum CallIdentity {
    /// Time-ordered, 64 random bits after the timestamp: unique per row.
    static func newCallID() -> String {
        hex(UInt64(UnixTime.nowMicros()), nextRandom())
    }

    /// Honours a client's `x-request-id` when it is short printable ASCII, else makes one.
    static func requestID(fromClient value: String?) -> String {
        if let value, !value.isEmpty, value.utf8.count <= 128,
           value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            return value
        }
        return hex(prefix: "req_", UInt64(UnixTime.nowMicros()), nextRandom() >> 32, lastDigits: 8)
    }

    /// Ids need uniqueness, not secrecy: a generator seeded once from the OS (per process, so
    /// replicas differ) instead of a `getrandom` system call per id, two per call.
    private static let generator: Mutex<SplitMix64> = {
        var system = SystemRandomNumberGenerator()
        return Mutex(SplitMix64(seed: system.next()))
    }()

    private static func nextRandom() -> UInt64 {
        generator.withLock { $0.next() }
    }

    /// Two ids per call: `prefix`, then 16 hex digits of `time` and the last `lastDigits` of
    /// `random`, written digit by digit into the string's own storage (one allocation).
    private static func hex(prefix: StaticString = "", _ time: UInt64, _ random: UInt64, lastDigits: Int = 16) -> String {
        let length = prefix.utf8CodeUnitCount + 16 + lastDigits
        return String(unsafeUninitializedCapacity: length) { buffer in
            let alphabet: StaticString = "0123456789abcdef"
            var at = 0
            func put(_ v: UInt64, digits: Int) {
                for i in 0..<digits {
                    buffer[at] = alphabet.utf8Start[Int((v >> UInt64(4 * (digits - 1 - i))) & 0xF)]
                    at += 1
                }
            }
            for i in 0..<prefix.utf8CodeUnitCount {
                buffer[at] = prefix.utf8Start[i]
                at += 1
            }
            put(time, digits: 16)
            put(random, digits: lastDigits)
            return at
        }
    }
}

/// SplitMix64 (Steele, Lea and Flood): a fast 64-bit generator whose outputs over a seed's
/// sequence do not repeat within 2^64 draws.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
