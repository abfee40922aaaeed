#if canImport(Glibc)
import Glibc
#endif

/// A calendar day (UTC) as days since 1970-01-01; price changes take effect at 00:00 UTC.
public struct Day: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var daysSinceEpoch: Int

    public init(daysSinceEpoch: Int) { self.daysSinceEpoch = daysSinceEpoch }

    /// Parses `YYYY-MM-DD` (digits only: no signs, no empty parts).
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") } }),
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
              (1...12).contains(m), (1...Day.daysIn(month: m, year: y)).contains(d) else { return nil }
        daysSinceEpoch = Day.civilToDays(y, m, d)
    }

    /// The day containing a Unix time in seconds.
    public init(unixSeconds: Int64) {
        daysSinceEpoch = Int((unixSeconds >= 0 ? unixSeconds : unixSeconds - 86_399) / 86_400)
    }

    public var unixSeconds: Int64 { Int64(daysSinceEpoch) * 86_400 }

    /// The current day, UTC.
    public static func today() -> Day {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Day(unixSeconds: Int64(now.tv_sec))
    }

    public static func < (a: Day, b: Day) -> Bool { a.daysSinceEpoch < b.daysSinceEpoch }

    /// `YYYY-MM-DD`. Written digit by digit into one small string: every recorded call's price
    /// id carries it (`ModelPrice.id`).
    public var description: String {
        let (y, m, d) = Day.daysToCivil(daysSinceEpoch)
        guard (0...9999).contains(y) else {
            func pad(_ v: Int, _ n: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, n - s.count)) + s }
            return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
        }
        return String(unsafeUninitializedCapacity: 10) { out in
            func put(_ value: Int, width: Int, at start: Int) {
                var v = value
                for i in stride(from: start + width - 1, through: start, by: -1) {
                    out[i] = UInt8(ascii: "0") + UInt8(v % 10)
                    v /= 10
                }
            }
            put(y, width: 4, at: 0)
            put(m, width: 2, at: 5)
            put(d, width: 2, at: 8)
            out[4] = UInt8(ascii: "-")
            out[7] = UInt8(ascii: "-")
            return 10
        }
    }

    static func daysIn(month m: Int, year y: Int) -> Int {
        switch m {
        case 2: return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days.
    static func civilToDays(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func daysToCivil(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
