import Metering

/// What admission set aside against a call's budgets: carried on the call and handed back to
/// `QuotaBook.settle` (or `release`). A small value: the budgets array is the plan's own
/// (shared, not copied), and the periods are the starts of the day, week and month the call
/// was admitted in, so settlement charges those periods even if the call ends after midnight.
public struct QuotaReservation: Sendable, Hashable {
    /// Unique within one `QuotaBook`.
    public let id: UInt64
    /// The worst-case cost and tokens held.
    public let cost: Money
    public let tokens: Int
    /// The budgets held against (the ones with no usd and no tokens limit hold nothing).
    public let budgets: [BudgetLimit]
    /// When admission reserved (Unix µs).
    public let reservedAt: Int64
    /// When housekeeping may release it as abandoned (past its call's longest life).
    let abandonAt: Int64
    let dayStart: Int64
    let weekStart: Int64
    let monthStart: Int64

    init(id: UInt64, cost: Money, tokens: Int, budgets: [BudgetLimit], reservedAt: Int64, abandonAt: Int64,
         dayStart: Int64, weekStart: Int64, monthStart: Int64) {
        self.id = id
        self.cost = cost
        self.tokens = tokens
        self.budgets = budgets
        self.reservedAt = reservedAt
        self.abandonAt = abandonAt
        self.dayStart = dayStart
        self.weekStart = weekStart
        self.monthStart = monthStart
    }

    /// The same reservation holding `cost` and `tokens` instead (grown for a pricier fallback).
    func holding(cost: Money, tokens: Int) -> QuotaReservation {
        QuotaReservation(id: id, cost: cost, tokens: tokens, budgets: budgets, reservedAt: reservedAt,
                         abandonAt: abandonAt, dayStart: dayStart, weekStart: weekStart, monthStart: monthStart)
    }

    /// The start of the `period` this reservation was made in (`.min` for a period none of
    /// its budgets use).
    func periodStart(_ period: BudgetPeriod) -> Int64 {
        switch period {
        case .day: return dayStart
        case .week: return weekStart
        case .month: return monthStart
        }
    }
}
