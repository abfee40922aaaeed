import Ledger

/// Identifiers of one call: the ledger row id and the correlation id returned as `x-request-id`.
///
/// Both start with the time in microseconds (hex), so that ledger index inserts land on the
/// same few pages: measured in the writer, random ids cost about three times the CPU per row.
enum CallIdentity {
    /// Time-ordered, 64 random bits after the timestamp: unique per row.
    static func newCallID() -> String {
        hex(UInt64(UnixTime.nowMicros())) + hex(UInt64.random(in: 0...UInt64.max))
    }

    /// Honours a client's `x-request-id` when it is short printable ASCII, else makes one.
    static func requestID(fromClient value: String?) -> String {
        if let value, !value.isEmpty, value.utf8.count <= 128,
           value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            return value
        }
        return "req_" + hex(UInt64(UnixTime.nowMicros())) + hex(UInt64(UInt32.random(in: 0...UInt32.max)), digits: 8)
    }

    private static func hex(_ v: UInt64, digits: Int = 16) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }
}
