import Foundation
import Ledger
import Metering
import Policy

/// Spend and active users of the current day and month in the policy's time zone, for the
/// gauges behind "daily cost per active user" (`tokenctl_spend_usd / tokenctl_active_users`)
/// and the optional top-N user labels.
///
/// A user is active in a period once a call of theirs that was not refused started in it (the
/// same rows `LedgerReader.spend(since:)` counts, which rebuilds this at start-up). A call is
/// counted in the period it started in, like budgets. Memory: one entry per active user of the
/// month, as the quota book keeps.
struct SpendActivity: Sendable {
    private var calendar: CalendarPeriod
    private var day = PeriodInterval(start: 0, end: 0)
    private var month = PeriodInterval(start: 0, end: 0)
    private(set) var daySpend: Int128 = 0
    private(set) var monthSpend: Int128 = 0
    private(set) var dayUsers: [String: Int128] = [:]
    private(set) var monthUsers: [String: Int128] = [:]

    init(timeZone: TimeZone) {
        calendar = CalendarPeriod(timeZone: timeZone)
    }

    /// Moves to the day and month containing `now` (a new period starts empty).
    mutating func roll(now: Int64, timeZone: TimeZone) {
        if calendar.timeZone.identifier != timeZone.identifier { calendar = CalendarPeriod(timeZone: timeZone) }
        if !day.contains(now) {
            day = calendar.interval(of: .day, containing: now)
            daySpend = 0
            dayUsers.removeAll(keepingCapacity: true)
        }
        if !month.contains(now) {
            month = calendar.interval(of: .month, containing: now)
            monthSpend = 0
            monthUsers.removeAll(keepingCapacity: true)
        }
    }

    /// Counts one call that was not refused.
    mutating func add(user: String?, picodollars: Int64, startedAt: Int64, now: Int64, timeZone: TimeZone) {
        roll(now: now, timeZone: timeZone)
        let cost = Int128(max(0, picodollars))
        if day.contains(startedAt) {
            daySpend += cost
            if let user { dayUsers[user, default: 0] += cost }
        }
        if month.contains(startedAt) {
            monthSpend += cost
            if let user { monthUsers[user, default: 0] += cost }
        }
    }

    /// Reads the current day's and month's spend from the ledger (at start-up, before serving).
    mutating func restore(from reader: any LedgerSource, now: Int64, timeZone: TimeZone) throws {
        roll(now: now, timeZone: timeZone)
        for spend in try reader.spend(since: day.start) {
            daySpend += spend.cost.picodollars
            if let user = spend.user { dayUsers[user, default: 0] += spend.cost.picodollars }
        }
        for spend in try reader.spend(since: month.start) {
            monthSpend += spend.cost.picodollars
            if let user = spend.user { monthUsers[user, default: 0] += spend.cost.picodollars }
        }
    }

    /// The `count` biggest spenders of the period, biggest first (ties by name, so stable).
    static func top(_ count: Int, of users: [String: Int128]) -> [(user: String, picodollars: Int128)] {
        users.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .prefix(count).map { ($0.key, $0.value) }
    }
}
