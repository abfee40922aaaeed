import Ledger
import Synchronization

/// Identifiers of one call: the ledger row id and the correlation id returned as `x-request-id`.
///
/// The row id starts with the time in microseconds (hex), so that ledger index inserts land on
/// the same few pages: measured in the writer, random ids cost about three times the CPU per row.
enum CallIdentity {
    /// Time-ordered, 64 random bits after the timestamp: unique per row.
    static func newCallID() -> String {
        let time = UInt64(UnixTime.nowMicros())
        let random = generator.withLock { $0.next() }
        return String(unsafeUninitializedCapacity: 32) { buffer in
            let alphabet: StaticString = "0123456789abcdef"
            for d in 0..<16 {
                let shift = UInt64(4 * (15 - d))
                buffer[d] = alphabet.utf8Start[Int((time >> shift) & 0xF)]
                buffer[16 + d] = alphabet.utf8Start[Int((random >> shift) & 0xF)]
            }
            return 32
        }
    }

    /// Honours a client's `x-request-id` when it is short printable ASCII, else makes one: `req_`
    /// and the call's id. The ledger indexes only the ids clients sent and finds the ones it made
    /// through the row id's own index, one index update fewer per row (`Schema` v7).
    static func requestID(fromClient value: String?, callID: String) -> String {
        if let value, !value.isEmpty, value.utf8.count <= 128,
           value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            return value
        }
        return LedgerEntry.madeRequestIDPrefix + callID
    }

    /// Ids need uniqueness, not secrecy: a generator seeded once from the OS (per process, so
    /// replicas differ) instead of a `getrandom` system call per id.
    private static let generator: Mutex<SplitMix64> = {
        var system = SystemRandomNumberGenerator()
        return Mutex(SplitMix64(seed: system.next()))
    }()
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
