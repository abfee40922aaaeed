import Foundation
import Ledger
import Metering
import Policy

/// The summary block of a report: where the money goes and where it is heading.
///
/// Every figure comes from the report engine (`LedgerReader.report`): the period by day, user
/// and team (and by model, for charts); the month so far and budget periods by user and team
/// when those rows cannot answer them. Definitions (the README repeats them):
///
/// - A user is *active* on a day (in the report's zone) if a call of theirs that day was not
///   refused (`refused_*`), as for the `tokenctl_active_users` gauge; refused calls (an admin
///   key's, a spent budget's) make nobody active.
/// - *Daily cost per active user* of a day: that day's cost ÷ its active users. The period mean
///   is the mean of those daily values over the days with at least one active user.
/// - *Burn rate*: tokens (input, cached, cache write, output) and cost per hour over the burn
///   window: from `since` (or, for a report from the beginning, the local midnight of its first
///   day with calls) to `until`, or to now for a period that has not ended.
/// - *Retry share*: retries ÷ requests, and their cost ÷ the total cost (a retry is a call whose
///   request body the same user sent within 120 s before: see `ReportFigures.retries`).
/// - *Budget utilisation*: for each budget of the policy (user, team, org; day, week, month)
///   whose payer made calls: spent in the budget period containing the report's end (now, for
///   an open period), in the policy's zone ÷ the limit, for money and tokens. Not filtered by
///   `--user/--team/--model`: a budget counts everything its payer spent.
/// - *Month-end forecast*: the report zone's month containing the report's end: cost so far in
///   that month + cost per hour of the burn window × hours left in the month after the report's
///   end. For a month already over this is the month's actual cost.
///
/// Money is exact pico-dollars; divisions round down to the pico-dollar.
public struct ReportSummary: Sendable {
    public struct DayActivity: Sendable, Hashable {
        /// Local date, `YYYY-MM-DD`.
        public var day: String
        public var requests: Int
        public var activeUsers: Int
        public var cost: Money.Total
        /// Cost per user for each active user that day (in the order of their cost, highest first).
        public var userCosts: [UserCost]

        /// nil on a day without active users.
        public var costPerActiveUser: Money.Total? {
            activeUsers == 0 ? nil : Money.Total(picodollars: cost.picodollars / Int128(activeUsers))
        }
    }

    public struct UserCost: Sendable, Hashable {
        public var user: String
        public var cost: Money.Total
    }

    public struct BudgetUse: Sendable, Hashable {
        public var scope: PayerScope
        public var period: BudgetPeriod
        /// The budget period `[start, end)` the spend is counted in (policy zone).
        public var start: Int64
        public var end: Int64
        public var spent: Money.Total
        public var limit: Money?
        public var tokens: Int
        public var tokenLimit: Int?

        /// The larger of money and token utilisation, in hundredths of a percent (10000 = 100 %).
        public var utilisationHundredths: Int128 {
            var worst: Int128 = 0
            if let limit, limit.picodollars > 0 { worst = max(worst, spent.picodollars * 10_000 / Int128(limit.picodollars)) }
            if let tokenLimit, tokenLimit > 0 { worst = max(worst, Int128(tokens) * 10_000 / Int128(tokenLimit)) }
            return worst
        }
    }

    public struct Forecast: Sendable, Hashable {
        /// The month `[start, end)` in the report's zone.
        public var monthStart: Int64
        public var monthEnd: Int64
        public var monthToDate: Money.Total
        public var projected: Money.Total
    }

    public var timeZone: TimeZone
    /// The report's totals (filters applied).
    public var totals: ReportFigures
    public var activeUsers: Int
    /// Every local day from the first to the last with calls.
    public var days: [DayActivity]
    /// Users by cost over the period, highest first (calls without a user left out).
    public var users: [UserCost]
    /// The period by model (for the charts).
    public var models: [ReportRow]
    /// The burn window `[start, end)`; empty (start == end) when there is nothing to measure.
    public var burnStart: Int64
    public var burnEnd: Int64
    /// Budgets by utilisation, highest first; empty without a policy or budgets.
    public var budgets: [BudgetUse]
    /// Where the budgets' limits were read (the policy directory), for the text formats to say:
    /// a report run with another directory than the proxy's shows other limits.
    public var budgetSource: String?
    public var forecast: Forecast?

    /// Mean of the days' cost per active user over days with active users; nil when none.
    public var meanDailyCostPerActiveUser: Money.Total? {
        let values = days.compactMap(\.costPerActiveUser)
        guard !values.isEmpty else { return nil }
        return Money.Total(picodollars: values.reduce(Int128(0)) { $0 + $1.picodollars } / Int128(values.count))
    }

    /// Input, cached, cache-write and output tokens (reasoning is part of output).
    public var tokens: Int { totals.totalTokens }

    public var tokensPerHour: Int? {
        burnEnd > burnStart ? Int(Int128(tokens) * 3_600_000_000 / Int128(burnEnd - burnStart)) : nil
    }

    public var costPerHour: Money.Total? {
        burnEnd > burnStart
            ? Money.Total(picodollars: totals.cost.picodollars * 3_600_000_000 / Int128(burnEnd - burnStart)) : nil
    }

    /// Retries as a percentage of requests ("12.50"), nil without requests.
    public var retryShareOfCalls: String? { Ratio.percent(totals.retries, of: totals.requests) }
    /// Retry cost as a percentage of cost, nil when nothing cost anything.
    public var retryShareOfCost: String? { Ratio.percent(totals.retryCost.picodollars, of: totals.cost.picodollars) }
}

extension ReportSummary {
    /// Computes the summary of `query` (its period, filters and zone; its grouping is ignored).
    /// `plans` gives the budgets (nil: none); `now` bounds periods that have not ended;
    /// `models` adds the by-model breakdown (the html charts use it).
    ///
    /// One engine query by day, user and team serves the days, the users, the month so far and
    /// every budget period made of whole days inside the report; only what it cannot answer
    /// (a month that began before `since`, budgets in another zone or outside the period, a
    /// filtered report) costs another engine query.
    public static func compute(reader: any LedgerSource, query: ReportQuery, plans: PlanBook?, now: Int64,
                               models: Bool = true) throws -> ReportSummary {
        // The summary adds money, tokens and counts: no percentiles (the costly part) except for
        // the per-model latency chart of html.
        func run(_ groupBy: [ReportDimension], _ since: Int64, _ until: Int64, _ filtered: Bool,
                 _ zone: TimeZone, figures: ReportFigureSet = .sums) throws -> Report {
            var q = ReportQuery(since: since, until: until, groupBy: groupBy, filters: filtered ? query.filters : [:])
            q.timeZone = zone
            q.figures = figures
            return try reader.report(q)
        }
        let byDay = try run([.day, .user, .team], query.since, query.until, true, query.timeZone)
        let cells = DayCells(rows: byDay.rows, zone: query.timeZone)
        let (days, users) = activity(byDay.rows)
        let end = min(query.until, now)
        var start = query.since
        if start == 0 {
            // No start given: the window opens with the first day that has calls (none: no window,
            // not one from 1970).
            start = days.first.flatMap { Day($0.day) }.map { ReportPeriod.localMidnight($0, in: query.timeZone) } ?? end
        }
        var summary = ReportSummary(
            timeZone: query.timeZone, totals: byDay.totals, activeUsers: users.count, days: days, users: users,
            models: models ? try run([.model], query.since, query.until, true, query.timeZone, figures: .all).rows : [],
            burnStart: start, burnEnd: max(end, start), budgets: [], forecast: nil)
        // The instant the report "stands at": its last microsecond, or now.
        let asOf = max(query.since, end - 1)
        // Rows of the report's days answer a span of whole local days inside the period (calls
        // after now do not exist yet, so an open period covers up to any later end).
        func covered(_ interval: PeriodInterval, zone: TimeZone) -> Bool {
            zone.identifier == query.timeZone.identifier && interval.start >= query.since
                && (interval.end <= query.until || query.until > now)
        }
        let month = CalendarPeriod(timeZone: query.timeZone).interval(of: .month, containing: asOf)
        let monthToDate = covered(month, zone: query.timeZone)
            ? cells.sum(in: month).cost
            : try run([], month.start, asOf + 1, true, query.timeZone).totals.cost
        var projected = monthToDate
        if summary.burnEnd > summary.burnStart, month.end > asOf + 1 {
            projected.picodollars += byDay.totals.cost.picodollars * Int128(month.end - (asOf + 1))
                / Int128(summary.burnEnd - summary.burnStart)
        }
        summary.forecast = Forecast(monthStart: month.start, monthEnd: month.end, monthToDate: monthToDate,
                                    projected: projected)
        if let plans {
            summary.budgets = try budgetUse(plans: plans, asOf: asOf, payers: query.filters.isEmpty ? byDay.rows : nil) {
                interval in
                if query.filters.isEmpty, covered(interval, zone: plans.timeZone) { return cells.rows(in: interval) }
                return try run([.user, .team], interval.start, interval.end, false, plans.timeZone)
                    .rows.map { (user: $0.values[0], team: $0.values[1], figures: $0.figures) }
            }
        }
        return summary
    }

    /// The rows of a report by day, user and team, with each day's first instant in the zone.
    private struct DayCells {
        var cells: [(start: Int64, user: String, team: String, figures: ReportFigures)] = []

        init(rows: [ReportRow], zone: TimeZone) {
            var starts: [String: Int64] = [:]
            for row in rows {
                guard let day = Day(row.values[0]) else { continue }
                let start = starts[row.values[0]] ?? ReportPeriod.localMidnight(day, in: zone)
                starts[row.values[0]] = start
                cells.append((start, row.values[1], row.values[2], row.figures))
            }
        }

        func rows(in interval: PeriodInterval) -> [(user: String, team: String, figures: ReportFigures)] {
            cells.filter { interval.contains($0.start) }.map { ($0.user, $0.team, $0.figures) }
        }

        func sum(in interval: PeriodInterval) -> ReportFigures {
            var total = ReportFigures()
            for cell in cells where interval.contains(cell.start) { total.absorb(cell.figures) }
            return total
        }
    }

    /// Days (gaps between the first and last filled with empty days) and users by cost, from
    /// rows by day, user and team (a user in two teams is one active user).
    private static func activity(_ rows: [ReportRow]) -> ([DayActivity], [UserCost]) {
        var perDay: [String: DayActivity] = [:]
        var perDayUser: [String: [String: Money.Total]] = [:]
        var perUser: [String: Money.Total] = [:]
        for row in rows {
            let (day, user) = (row.values[0], row.values[1])
            var entry = perDay[day] ?? DayActivity(day: day, requests: 0, activeUsers: 0, cost: .init(), userCosts: [])
            entry.requests += row.requests
            entry.cost.picodollars += row.cost.picodollars
            if user != ReportDimension.noneLabel, row.requests > row.refused {
                perDayUser[day, default: [:]][user, default: .init()].picodollars += row.cost.picodollars
                perUser[user, default: .init()].picodollars += row.cost.picodollars
            }
            perDay[day] = entry
        }
        var days: [DayActivity] = []
        let numbers = perDay.keys.compactMap { Day($0)?.daysSinceEpoch }
        if let first = numbers.min(), let last = numbers.max() {
            for number in first...last {
                let label = Day(daysSinceEpoch: number).description
                var entry = perDay[label] ?? DayActivity(day: label, requests: 0, activeUsers: 0, cost: .init(), userCosts: [])
                let users = perDayUser[label] ?? [:]
                entry.activeUsers = users.count
                entry.userCosts = users.map { UserCost(user: $0.key, cost: $0.value) }.sorted(by: costly)
                days.append(entry)
            }
        }
        let users = perUser.map { UserCost(user: $0.key, cost: $0.value) }.sorted(by: costly)
        return (days, users)
    }

    private static func costly(_ a: UserCost, _ b: UserCost) -> Bool {
        a.cost.picodollars != b.cost.picodollars ? a.cost.picodollars > b.cost.picodollars : a.user < b.user
    }

    /// Spend against each budget of the payers that made calls. `spend(interval)` gives the
    /// spend by user and team in a budget period. Periods no budget uses are skipped, judged from
    /// `payers` (rows whose user and team are the second and third labels; nil: judge nothing).
    private static func budgetUse(
        plans: PlanBook, asOf: Int64, payers: [ReportRow]?,
        spend: (PeriodInterval) throws -> [(user: String, team: String, figures: ReportFigures)]
    ) throws -> [BudgetUse] {
        func plan(_ user: String, _ team: String) -> EffectivePlan {
            plans.effectivePlan(user: user, team: team == ReportDimension.noneLabel ? nil : team)
        }
        var periods = Set(BudgetPeriod.allCases)
        if let payers {
            periods = Set(plans.orgBudgets.map(\.period))
            var seen = Set<[String]>()
            for row in payers where row.values[1] != ReportDimension.noneLabel && seen.insert([row.values[1], row.values[2]]).inserted {
                periods.formUnion(plan(row.values[1], row.values[2]).budgets.map(\.period))
            }
        }
        let calendar = CalendarPeriod(timeZone: plans.timeZone)
        var uses: [BudgetUse] = []
        for period in BudgetPeriod.allCases where periods.contains(period) {
            let interval = calendar.interval(of: period, containing: asOf)
            var spent: [PayerScope: (cost: Money.Total, tokens: Int)] = [:]
            var limits: [PayerScope: BudgetLimit] = [:]
            var all = ReportFigures()
            func charge(_ scope: PayerScope, _ figures: ReportFigures) {
                var sum = spent[scope] ?? (Money.Total(), 0)
                sum.cost.picodollars += figures.cost.picodollars
                sum.tokens += figures.totalTokens
                spent[scope] = sum
            }
            for row in try spend(interval) {
                all.absorb(row.figures)
                guard row.user != ReportDimension.noneLabel else { continue }
                for budget in plan(row.user, row.team).budgets where budget.period == period {
                    if case .org = budget.scope { continue }
                    limits[budget.scope] = budget
                    charge(budget.scope, row.figures)
                }
            }
            for budget in plans.orgBudgets where budget.period == period {
                limits[.org] = budget
                charge(.org, all)
            }
            for (scope, budget) in limits {
                let sum = spent[scope] ?? (Money.Total(), 0)
                uses.append(BudgetUse(scope: scope, period: period, start: interval.start, end: interval.end,
                                      spent: sum.cost, limit: budget.usd, tokens: sum.tokens, tokenLimit: budget.tokens))
            }
        }
        return uses.sorted {
            $0.utilisationHundredths != $1.utilisationHundredths
                ? $0.utilisationHundredths > $1.utilisationHundredths
                : ($0.scope.description, $0.period.rawValue) < ($1.scope.description, $1.period.rawValue)
        }
    }
}
