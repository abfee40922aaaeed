import Foundation
import Metering

/// Turns the `--since` / `--until` texts of `tokenctl report` into Unix microseconds.
public enum ReportPeriod {
    public struct InvalidInstant: Error, CustomStringConvertible {
        public var text: String
        public var description: String {
            "'\(text)' is not a date (YYYY-MM-DD, UTC midnight) or an ISO 8601 date-time (2026-11-01T09:30:00Z)"
        }
    }

    /// `YYYY-MM-DD` is that day's 00:00 UTC; an ISO 8601 date-time without a zone is taken as UTC.
    public static func parseInstant(_ text: String) throws -> Int64 {
        if let day = Day(text) { return day.unixSeconds * 1_000_000 }
        let formatter = ISO8601DateFormatter()
        let plain: ISO8601DateFormatter.Options = [.withInternetDateTime]
        let fractional: ISO8601DateFormatter.Options = [.withInternetDateTime, .withFractionalSeconds]
        for (options, suffix) in [(plain, ""), (fractional, ""), (plain, "Z"), (fractional, "Z")] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text + suffix) {
                return Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
            }
        }
        throw InvalidInstant(text: text)
    }
}
