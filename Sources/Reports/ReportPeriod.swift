import Foundation
import Ledger
import Metering

/// Turns the period options of `tokenctl report` into Unix microseconds, in UTC.
///
/// Instants: `YYYY-MM-DD` (that day's 00:00), an ISO 8601 date-time (no zone = UTC), or relative:
/// `7d` (seven days before now), `mtd` (the start of this month). Periods: `YYYY-MM` (a whole
/// month, as finance closes it), `last-month`.
public enum ReportPeriod {
    public struct InvalidPeriod: Error, CustomStringConvertible {
        public var text: String
        public var description: String {
            "'\(text)' is not a date (YYYY-MM-DD), an ISO 8601 date-time (2026-11-01T09:30:00Z), Nd (days ago) or mtd"
        }
    }

    /// The report's `[since, until)` from `--period`, or from `--since` / `--until` (defaults:
    /// the beginning, and now).
    public static func range(since: String?, until: String?, period: String?, now: Int64) throws -> (Int64, Int64) {
        if let period {
            if period == "last-month" {
                let thisMonth = monthStart(containing: now)
                return (monthStart(containing: thisMonth - 1), thisMonth)
            }
            let parts = period.split(separator: "-")
            guard parts.count == 2, let first = Day("\(period)-01") else { throw InvalidPeriod(text: period) }
            let start = first.unixSeconds * 1_000_000
            return (start, nextMonth(after: start))
        }
        return (try since.map { try parseInstant($0, now: now) } ?? 0,
                try until.map { try parseInstant($0, now: now) } ?? now + 1)
    }

    /// One instant: a day, a date-time, `Nd` or `mtd` (see the type's documentation).
    public static func parseInstant(_ text: String, now: Int64 = UnixTime.nowMicros()) throws -> Int64 {
        if let day = Day(text) { return day.unixSeconds * 1_000_000 }
        if text == "mtd" { return monthStart(containing: now) }
        if text.hasSuffix("d"), let days = Int(text.dropLast()), days >= 0, days <= 100_000 {
            return now - Int64(days) * UnixTime.microsPerDay
        }
        let formatter = ISO8601DateFormatter()
        let plain: ISO8601DateFormatter.Options = [.withInternetDateTime]
        let fractional: ISO8601DateFormatter.Options = [.withInternetDateTime, .withFractionalSeconds]
        for (options, suffix) in [(plain, ""), (fractional, ""), (plain, "Z"), (fractional, "Z")] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text + suffix) {
                return Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
            }
        }
        throw InvalidPeriod(text: text)
    }

    private static func monthStart(containing micros: Int64) -> Int64 {
        let day = Day(unixSeconds: micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000)
        let text = day.description  // YYYY-MM-DD
        return Day(String(text.prefix(8)) + "01")!.unixSeconds * 1_000_000
    }

    private static func nextMonth(after monthStart: Int64) -> Int64 {
        // 32 days after any month's first day is in the next month.
        Self.monthStart(containing: monthStart + 32 * UnixTime.microsPerDay)
    }
}

