import Foundation

/// A half-open span of time `[start, end)` in Unix microseconds.
public struct PeriodInterval: Sendable, Hashable, CustomStringConvertible {
    public var start: Int64
    public var end: Int64

    public init(start: Int64, end: Int64) {
        self.start = start
        self.end = end
    }

    public func contains(_ instant: Int64) -> Bool { start <= instant && instant < end }

    public var description: String { "[\(start), \(end))" }
}

/// Cuts time into budget periods in one time zone: the day, the ISO week (Monday to Monday) or
/// the month containing an instant, by the Gregorian calendar. Exact across DST changes: a day
/// is 23 or 25 hours when the clocks change, and it starts at the zone's local midnight (or the
/// first instant after it, where a change skips midnight).
///
/// An instant on a boundary belongs to the period that starts there. Asking Foundation takes
/// microseconds, so callers on the request path cache the current interval (`QuotaBook` does).
public struct CalendarPeriod: Sendable {
    public let timeZone: TimeZone
    private let calendar: Calendar

    public init(timeZone: TimeZone) {
        self.timeZone = timeZone
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        calendar.firstWeekday = 2  // Monday
        calendar.minimumDaysInFirstWeek = 4  // ISO 8601 (only week numbers depend on it)
        self.calendar = calendar
    }

    /// The `period` containing `instant` (Unix µs).
    public func interval(of period: BudgetPeriod, containing instant: Int64) -> PeriodInterval {
        let date = Date(timeIntervalSince1970: Double(instant) / 1_000_000)
        let component: Calendar.Component
        switch period {
        case .day: component = .day
        case .week: component = .weekOfYear
        case .month: component = .month
        }
        guard let found = calendar.dateInterval(of: component, for: date) else {
            // Foundation finds every Gregorian period; this guards an impossible nil.
            preconditionFailure("no \(period) contains \(instant) in \(timeZone.identifier)")
        }
        var interval = PeriodInterval(start: Self.micros(found.start), end: Self.micros(found.end))
        // Boundaries are whole seconds; the double conversion cannot move an instant across one
        // by more than rounding, but keep the containment promise exact regardless.
        if instant < interval.start { interval.start = instant }
        if instant >= interval.end { interval.end = instant + 1 }
        return interval
    }

    /// The `period` containing `instant` in `timeZone` (builds a calendar each time).
    public static func interval(of period: BudgetPeriod, containing instant: Int64,
                                in timeZone: TimeZone) -> PeriodInterval {
        CalendarPeriod(timeZone: timeZone).interval(of: period, containing: instant)
    }

    static func micros(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }
}
