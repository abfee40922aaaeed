import Foundation
import Ledger
import Metering
import Policy

/// Turns the period options of `tokenctl report` (and `export`, `policy simulate`) into Unix
/// microseconds, read in one time zone (default UTC).
///
/// Instants: `YYYY-MM-DD` (that day's local midnight), an ISO 8601 date-time (with an offset or
/// `Z`; without one it is local time in the zone), or relative: `7d` (seven days before now),
/// `mtd` (the start of this local month). Periods: `YYYY-MM` (a whole local month, as finance
/// closes it), `last-month`.
public enum ReportPeriod {
    public struct InvalidPeriod: Error, CustomStringConvertible {
        public var text: String
        /// A whole period was asked for (`--period`), not an instant (`--since`, `--until`).
        public var wantedPeriod = false
        public var description: String {
            wantedPeriod
                ? "'\(text)' is not a month (YYYY-MM, e.g. 2026-11) or last-month"
                : "'\(text)' is not a date (YYYY-MM-DD), an ISO 8601 date-time (2026-11-01T09:30:00Z), Nd (days ago) or mtd"
        }
    }

    public static let utc = TimeZone(identifier: "UTC")!

    /// The report's `[since, until)` from `--period`, or from `--since` / `--until` (defaults:
    /// the beginning, and now).
    public static func range(since: String?, until: String?, period: String?, now: Int64,
                             timeZone: TimeZone = utc) throws -> (Int64, Int64) {
        let months = CalendarPeriod(timeZone: timeZone)
        if let period {
            if period == "last-month" {
                let thisMonth = months.interval(of: .month, containing: now)
                return (months.interval(of: .month, containing: thisMonth.start - 1).start, thisMonth.start)
            }
            let parts = period.split(separator: "-")
            guard parts.count == 2, let first = Day("\(period)-01") else {
                throw InvalidPeriod(text: period, wantedPeriod: true)
            }
            let month = months.interval(of: .month, containing: localMidnight(first, in: timeZone))
            return (month.start, month.end)
        }
        return (try since.map { try parseInstant($0, now: now, timeZone: timeZone) } ?? 0,
                try until.map { try parseInstant($0, now: now, timeZone: timeZone) } ?? now + 1)
    }

    /// One instant: a day, a date-time, `Nd` or `mtd` (see the type's documentation).
    public static func parseInstant(_ text: String, now: Int64 = UnixTime.nowMicros(),
                                    timeZone: TimeZone = utc) throws -> Int64 {
        if let day = Day(text) { return localMidnight(day, in: timeZone) }
        if text == "mtd" { return CalendarPeriod(timeZone: timeZone).interval(of: .month, containing: now).start }
        if text.hasSuffix("d"), let days = Int(text.dropLast()), days >= 0, days <= 100_000 {
            return now - Int64(days) * UnixTime.microsPerDay
        }
        if let instant = dateTime(text, in: timeZone) { return instant }
        throw InvalidPeriod(text: text)
    }

    /// `YYYY-MM-DDTHH:MM[:SS[.fraction]]` then `Z`, `±HH:MM`, `±HHMM` or nothing (local time in
    /// `timeZone`), read whole and to the microsecond (`export` writes microseconds; a tool that
    /// resumes from the last row's time must not see it again). Nil for anything else, trailing
    /// text included.
    static func dateTime(_ text: String, in timeZone: TimeZone) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count >= 16, let day = Day(String(decoding: bytes[0..<10], as: UTF8.self)),
              bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t") else { return nil }
        var at = 11
        func digits(_ count: Int) -> Int? {
            guard at + count <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[at..<(at + count)] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            at += count
            return value
        }
        func take(_ byte: Character) -> Bool {
            guard at < bytes.count, bytes[at] == byte.asciiValue else { return false }
            at += 1
            return true
        }
        guard let hour = digits(2), hour < 24, take(":"), let minute = digits(2), minute < 60 else { return nil }
        var second = 0, micros: Int64 = 0
        if take(":") {
            guard let s = digits(2), s < 60 else { return nil }
            second = s
            if take(".") || take(",") {
                var places = 0
                while at < bytes.count, let digit = digits(1) {
                    if places < 6 { micros = micros * 10 + Int64(digit) }
                    places += 1
                }
                guard places > 0 else { return nil }
                for _ in places..<max(places, 6) { micros *= 10 }
            }
        }
        let clock = Int64(hour * 3_600 + minute * 60 + second) * UnixTime.microsPerSecond + micros
        if at == bytes.count {
            // Local time: the zone's offset at that wall time (a DST gap's time moves forward).
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = timeZone
            let midnight = Date(timeIntervalSince1970: Double(localMidnight(day, in: timeZone)) / 1e6)
            guard let date = calendar.date(bySettingHour: hour, minute: minute, second: second, of: midnight) else {
                return nil
            }
            return Int64(date.timeIntervalSince1970.rounded()) * UnixTime.microsPerSecond + micros
        }
        var offset: Int64 = 0
        if take("Z") || take("z") {
            offset = 0
        } else if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") {
            let sign: Int64 = bytes[at] == UInt8(ascii: "-") ? -1 : 1
            at += 1
            guard let hours = digits(2), hours <= 14 else { return nil }
            _ = take(":")
            guard let minutes = digits(2), minutes < 60 else { return nil }
            offset = sign * Int64(hours * 3_600 + minutes * 60) * UnixTime.microsPerSecond
        } else {
            return nil
        }
        guard at == bytes.count else { return nil }
        return day.unixSeconds * UnixTime.microsPerSecond + clock - offset
    }

    /// The first instant of `day` in `timeZone` (after a DST gap at midnight, the first that exists).
    public static func localMidnight(_ day: Day, in timeZone: TimeZone) -> Int64 {
        // Noon exists on every day; the day containing it starts at local midnight.
        let noon = day.unixSeconds * 1_000_000 + 12 * 3_600_000_000
        let guess = noon - Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(noon) / 1e6))) * 1_000_000
        return CalendarPeriod(timeZone: timeZone).interval(of: .day, containing: guess).start
    }
}
