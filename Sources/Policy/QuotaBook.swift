import Foundation
import Metering
import Synchronization

/// Budgets per payer and calendar period, with reservations so that concurrent calls cannot
/// overshoot them (invariant 3).
///
/// Admission reserves a call's worst-case cost and tokens against every budget that applies
/// (user, team, org; day, week, month), atomically: all of them or none. Settlement replaces the
/// reservation with the actual spend. So at any moment `spent + reserved ≤ limit` for each
/// budget, as long as each call's actual spend stays within its reservation.
///
/// **Periods.** A budget's period is the calendar day, ISO week (from Monday) or month in the
/// policy's time zone (`CalendarPeriod`). A call is charged to the periods it was *reserved* in:
/// one admitted at 23:59 and finishing at 00:01 counts against yesterday (it was admitted
/// against yesterday's remaining budget), and today's budget starts untouched. The ledger query
/// that rebuilds this book at start-up groups calls by their start time the same way.
///
/// **Memory.** One bucket per (scope, period, period start) in use: every payer that spent in
/// the current day, week or month has its user, team and org buckets, budgeted or not
/// (`settle(_:user:team:...)`), as the start-up rebuild restores them. Buckets of periods that are
/// over and hold nothing are dropped; reservations still open `abandonAfter` after they were
/// made, and past their call's longest life, are released (see `QuotaBookStateMachine`). Both
/// happen at most once a minute.
///
/// Thread-safe: one lock acquisition per call. All times are Unix microseconds.
public final class QuotaBook: Sendable {
    private let state: Mutex<QuotaBookStateMachine>

    /// `abandonAfter`: how long a reservation may stay open before it is released as abandoned,
    /// unless its call may take longer (`reserve`'s `holdAtLeast`). Default one hour.
    public init(abandonAfter: Int64 = 3_600_000_000) {
        state = Mutex(QuotaBookStateMachine(abandonAfter: abandonAfter))
    }

    /// Reserves `cost` and `tokens` (the call's worst case) against every budget in `budgets`,
    /// or refuses with the first budget, in order, that `spent + reserved + cost` (or the same in
    /// tokens) would exceed. Budgets with neither a usd nor a tokens limit are ignored.
    /// `holdAtLeast`: the call's longest life (µs); its hold is not abandoned before.
    public func reserve(budgets: [BudgetLimit], cost: Money, tokens: Int, now: Int64, holdAtLeast: Int64 = 0,
                        timeZone: TimeZone) -> Result<QuotaReservation, QuotaRefusal> {
        state.withLock {
            $0.reserve(budgets: budgets, cost: cost, tokens: tokens, now: now, holdAtLeast: holdAtLeast,
                       timeZone: timeZone)
        }
    }

    /// Removes the reservation and spends `cost` and `tokens` (the actual use) in the periods it
    /// was reserved in. Returns false, changing nothing, if it was already settled or released.
    @discardableResult
    public func settle(_ reservation: QuotaReservation, cost: Money, tokens: Int, now: Int64) -> Bool {
        state.withLock { $0.settle(reservation, cost: cost, tokens: tokens, now: now) }
    }

    /// Spends a call's actual use in every scope it is paid from: in the buckets `reservation`
    /// holds (as `settle`), and in the day, week and month containing `startedAt` of each other
    /// scope (user, team, org), budgeted or not. So a budget a policy reload adds finds its
    /// period's spend already counted, as `Enforcer.rebuild` counts it at a restart. Returns
    /// false, changing nothing, if the reservation was already settled or released.
    @discardableResult
    public func settle(_ reservation: QuotaReservation?, user: String, team: String?, cost: Money, tokens: Int,
                       startedAt: Int64, now: Int64, timeZone: TimeZone) -> Bool {
        state.withLock {
            $0.settle(reservation, user: user, team: team, cost: cost, tokens: tokens, startedAt: startedAt, now: now,
                      timeZone: timeZone)
        }
    }

    /// Holds `cost` and `tokens` in place of what an open reservation holds (a call moving to a
    /// pricier fallback model), if every budget can take the difference; nil if the reservation
    /// is no longer open. Returns the grown reservation, to settle in place of the first.
    public func grow(_ reservation: QuotaReservation, cost: Money, tokens: Int,
                     timeZone: TimeZone) -> Result<QuotaReservation, QuotaRefusal>? {
        state.withLock { $0.grow(reservation, cost: cost, tokens: tokens, timeZone: timeZone) }
    }

    /// Removes the reservation without spending anything (the call never reached the provider).
    /// Returns false, changing nothing, if it was already settled or released.
    @discardableResult
    public func release(_ reservation: QuotaReservation, now: Int64) -> Bool {
        state.withLock { $0.release(reservation, now: now) }
    }

    /// What is left of each tracked budget in its current period, in order.
    public func remaining(budgets: [BudgetLimit], now: Int64, timeZone: TimeZone) -> [QuotaStanding] {
        state.withLock { $0.remaining(budgets: budgets, now: now, timeZone: timeZone) }
    }

    /// Adds spend recorded in the ledger to a period (at start-up, before serving). Adds rather
    /// than sets, so a scope's spend may be given in parts (e.g. a team's, member by member).
    /// `periodStart` must be `CalendarPeriod(timeZone:).interval(of: period, containing: now).start`
    /// in the policy's zone, or the spend lands in a bucket no call looks at.
    public func restore(scope: PayerScope, period: BudgetPeriod, periodStart: Int64, spent: Money.Total,
                        tokens: Int) {
        state.withLock {
            $0.restore(scope: scope, period: period, periodStart: periodStart, spent: spent, tokens: tokens)
        }
    }

    /// `restore` with a single amount.
    public func restore(scope: PayerScope, period: BudgetPeriod, periodStart: Int64, spent: Money,
                        tokens: Int) {
        var total = Money.Total()
        total.add(spent)
        restore(scope: scope, period: period, periodStart: periodStart, spent: total, tokens: tokens)
    }

    /// Every budget bucket of the current day, week and month in `timeZone`: what each scope has
    /// spent plus what calls in flight hold (for budget utilisation metrics; one pass, O(buckets)).
    public func currentUse(now: Int64, timeZone: TimeZone) -> [BudgetUse] {
        state.withLock { $0.currentUse(now: now, timeZone: timeZone) }
    }

    /// Reservations not yet settled or released (for metrics and tests).
    public var openReservations: Int { state.withLock { $0.open.count } }

    /// Buckets held in memory (for metrics and tests).
    public var trackedBuckets: Int { state.withLock { $0.buckets.count } }

    /// One bucket's sums, for tests.
    func bucket(_ scope: PayerScope, _ period: BudgetPeriod, start: Int64) -> QuotaBucket? {
        state.withLock { $0.buckets[QuotaBucketKey(scope: scope, period: period, start: start)] }
    }
}
