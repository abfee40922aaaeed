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
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = timeZone
        let zoned: ISO8601DateFormatter.Options = [.withInternetDateTime]
        let zonedFraction: ISO8601DateFormatter.Options = [.withInternetDateTime, .withFractionalSeconds]
        // Without an offset the text is local time: the formatter then reads it in `timeZone`.
        let local: ISO8601DateFormatter.Options = [.withFullDate, .withTime, .withColonSeparatorInTime,
                                                   .withDashSeparatorInDate]
        for options in [zoned, zonedFraction, local, local.union(.withFractionalSeconds)] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text) {
                return Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
            }
        }
        throw InvalidPeriod(text: text)
    }

    /// The first instant of `day` in `timeZone` (after a DST gap at midnight, the first that exists).
    public static func localMidnight(_ day: Day, in timeZone: TimeZone) -> Int64 {
        // Noon exists on every day; the day containing it starts at local midnight.
        let noon = day.unixSeconds * 1_000_000 + 12 * 3_600_000_000
        let guess = noon - Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(noon) / 1e6))) * 1_000_000
        return CalendarPeriod(timeZone: timeZone).interval(of: .day, containing: guess).start
    }
}
