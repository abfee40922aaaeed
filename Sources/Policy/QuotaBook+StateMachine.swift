import Foundation
import Metering

/// Spend and holds of one budget in one period. Sums are 128-bit: they cannot overflow.
struct QuotaBucket: Sendable, Hashable {
    var spent: Int128 = 0  // pico-dollars
    var reserved: Int128 = 0
    var spentTokens: Int128 = 0
    var reservedTokens: Int128 = 0

    /// Whether calls in flight hold part of it (such a bucket is never pruned).
    var isHeld: Bool { reserved != 0 || reservedTokens != 0 }
}

/// A budget's scope and period, and which period: the bucket a reservation holds.
struct QuotaBucketKey: Sendable, Hashable {
    var scope: PayerScope
    var period: BudgetPeriod
    var start: Int64

    /// Two combines (the synthesized hash feeds the scope's case, the name, the period's raw
    /// *string* and the start separately): hashing is most of a reservation's cost.
    func hash(into hasher: inout Hasher) {
        let tag: Int64
        switch scope {
        case .user(let name): tag = 0; hasher.combine(name)
        case .team(let name): tag = 1; hasher.combine(name)
        case .org: tag = 2
        }
        let periodTag: Int64
        switch period {
        case .day: periodTag = 0
        case .week: periodTag = 1
        case .month: periodTag = 2
        }
        hasher.combine(start &* 9 &+ periodTag &* 3 &+ tag)
    }
}

/// The quota book's state and the reservation lifecycle, pure (time passed in):
///
///     reserve ──▶ open ──settle──▶ settled   (reserved removed, actual spend added)
///                      ──release─▶ released  (reserved removed, nothing spent)
///                      ──past abandonAt──▶ abandoned (reserved removed)
///                                                ──settle──▶ settled late (actual spend added)
///
/// A reservation is settled or released at most once; settling or releasing one that is no
/// longer open or abandoned (settled, released, or forgotten) does nothing.
///
/// Housekeeping runs at most once a minute, inside whichever call comes first: reservations open
/// past `abandonAt` (`abandonAfter`, or the call's longest life if longer) are released (a call that never settled must not hold budget
/// forever) but remembered for `forgetAbandonedAfter` more, so a call that was only slow is still
/// charged when it ends; buckets of periods that are over and hold nothing are dropped.
struct QuotaBookStateMachine: Sendable {
    private(set) var buckets: [QuotaBucketKey: QuotaBucket] = [:]
    private(set) var open: [UInt64: QuotaReservation] = [:]
    /// Reservations released by housekeeping whose calls have not settled yet.
    private(set) var abandoned: [UInt64: QuotaReservation] = [:]
    private var clocks: [PeriodClock] = []
    private var nextId: UInt64 = 1
    private var nextSweep: Int64 = .min
    let abandonAfter: Int64
    /// How long an abandoned reservation waits for its call to settle, past its `abandonAt`.
    static let forgetAbandonedAfter: Int64 = 2 * 86_400_000_000

    init(abandonAfter: Int64) {
        self.abandonAfter = abandonAfter
    }

    // MARK: Reserve

    /// One pass over the budgets, holding as it goes (one hash look-up per budget); a refusal
    /// gives back what the earlier budgets took, so a refused call holds nothing.
    mutating func reserve(budgets: [BudgetLimit], cost: Money, tokens: Int, now: Int64, holdAtLeast: Int64 = 0,
                          timeZone: TimeZone) -> Result<QuotaReservation, QuotaRefusal> {
        maintain(now)
        let cost = max(cost, .zero), tokens = max(tokens, 0)
        let clock = clockIndex(for: timeZone)
        var starts = PeriodStarts(), ends = PeriodStarts()
        for budget in budgets where budget.isTracked {
            let interval = clocks[clock].interval(of: budget.period, containing: now)
            starts[budget.period] = interval.start
            ends[budget.period] = interval.end
        }
        let reservation = QuotaReservation(
            id: nextId, cost: cost, tokens: tokens, budgets: budgets, reservedAt: now,
            abandonAt: Self.adding(max(abandonAfter, holdAtLeast), to: now),
            dayStart: starts.day, weekStart: starts.week, monthStart: starts.month)
        for index in budgets.indices where budgets[index].isTracked {
            let budget = budgets[index]
            let key = QuotaBucketKey(scope: budget.scope, period: budget.period, start: starts[budget.period])
            let refusal = buckets[key, default: QuotaBucket()].hold(
                budget, cost: cost, tokens: tokens, alreadyHeld: Self.repeats(budgets, index),
                period: PeriodInterval(start: starts[budget.period], end: ends[budget.period]))
            if let refusal {
                undo(reservation, before: index)
                dropIfEmpty(key)
                return .failure(refusal)
            }
        }
        nextId += 1
        open[reservation.id] = reservation
        return .success(reservation)
    }

    /// Holds `cost` and `tokens` in place of what an open reservation holds, in the periods it
    /// was made in: what is added must fit every budget, as at admission; on a refusal nothing
    /// changes. Never shrinks it.
    mutating func grow(_ reservation: QuotaReservation, cost: Money, tokens: Int,
                       timeZone: TimeZone) -> Result<QuotaReservation, QuotaRefusal>? {
        guard let held = open[reservation.id] else { return nil }
        let extra = QuotaReservation(id: held.id, cost: Money(picodollars: max(0, cost.picodollars - held.cost.picodollars)),
                                     tokens: max(0, tokens - held.tokens),
                                     budgets: held.budgets, reservedAt: held.reservedAt, abandonAt: held.abandonAt,
                                     dayStart: held.dayStart,
                                     weekStart: held.weekStart, monthStart: held.monthStart)
        let clock = clockIndex(for: timeZone)
        let budgets = held.budgets
        for index in budgets.indices where budgets[index].isTracked {
            let budget = budgets[index]
            let start = held.periodStart(budget.period)
            let key = QuotaBucketKey(scope: budget.scope, period: budget.period, start: start)
            let interval = clocks[clock].interval(of: budget.period, containing: held.reservedAt)
            if let refusal = buckets[key, default: QuotaBucket()].hold(
                budget, cost: extra.cost, tokens: extra.tokens, alreadyHeld: Self.repeats(budgets, index),
                period: PeriodInterval(start: start, end: interval.end)) {
                undo(extra, before: index)
                return .failure(refusal)
            }
        }
        let grown = held.holding(cost: max(cost, held.cost), tokens: max(tokens, held.tokens))
        open[held.id] = grown
        return .success(grown)
    }

    /// Gives back what `reservation` held in `budgets[..<end]` (a refusal at `end`).
    private mutating func undo(_ reservation: QuotaReservation, before end: Int) {
        let budgets = reservation.budgets
        for index in 0..<end where budgets[index].isTracked && !Self.repeats(budgets, index) {
            let key = QuotaBucketKey(scope: budgets[index].scope, period: budgets[index].period,
                                     start: reservation.periodStart(budgets[index].period))
            guard var bucket = buckets[key] else { continue }
            bucket.unhold(reservation)
            if bucket == QuotaBucket() {
                buckets.removeValue(forKey: key)
            } else {
                buckets[key] = bucket
            }
        }
    }

    /// Removes a bucket that holds and counts nothing (one a refused call created).
    private mutating func dropIfEmpty(_ key: QuotaBucketKey) {
        if buckets[key] == QuotaBucket() { buckets.removeValue(forKey: key) }
    }

    /// Whether an earlier tracked budget has the same scope and period: the same bucket, which
    /// a reservation holds only once.
    static func repeats(_ budgets: [BudgetLimit], _ index: Int) -> Bool {
        let budget = budgets[index]
        return budgets[..<index].contains {
            $0.isTracked && $0.period == budget.period && $0.scope == budget.scope
        }
    }

    // MARK: Settle and release

    /// Ends an open reservation: its holds are removed and `cost`/`tokens` are spent in the
    /// periods it was reserved in. Returns false (and changes nothing) if it was not open.
    @discardableResult
    mutating func settle(_ reservation: QuotaReservation, cost: Money, tokens: Int, now: Int64) -> Bool {
        maintain(now)
        let spent = Int128(max(cost, .zero).picodollars), spentTokens = Int128(max(tokens, 0))
        if let held = open.removeValue(forKey: reservation.id) {
            forEachBucket(of: held) { bucket in
                bucket.unhold(held)
                Self.add(spent, spentTokens, to: &bucket)
            }
            return true
        }
        // Abandoned while its call was still running: its hold is gone, its spend is not.
        guard let late = abandoned.removeValue(forKey: reservation.id) else { return false }
        forEachBucket(of: late) { Self.add(spent, spentTokens, to: &$0) }
        return true
    }

    /// Settles `reservation` (if any) and spends the same use in every other scope of the call,
    /// in the periods containing `startedAt` (see `QuotaBook.settle(_:user:team:...)`).
    @discardableResult
    mutating func settle(_ reservation: QuotaReservation?, user: String, team: String?, cost: Money, tokens: Int,
                         startedAt: Int64, now: Int64, timeZone: TimeZone) -> Bool {
        if let reservation {
            guard settle(reservation, cost: cost, tokens: tokens, now: now) else { return false }
        } else {
            maintain(now)
        }
        let spent = Int128(max(cost, .zero).picodollars), spentTokens = Int128(max(tokens, 0))
        guard spent > 0 || spentTokens > 0 else { return true }
        // The (scope, period) pairs the reservation settled, one bit each.
        var settled: UInt16 = 0
        for budget in reservation?.budgets ?? [] where budget.isTracked {
            settled |= Self.bit(budget.scope, budget.period)
        }
        func charge(_ scope: PayerScope, _ period: BudgetPeriod, from start: Int64) {
            guard settled & Self.bit(scope, period) == 0 else { return }
            let key = QuotaBucketKey(scope: scope, period: period, start: start)
            Self.add(spent, spentTokens, to: &buckets[key, default: QuotaBucket()])
        }
        let clock = clockIndex(for: timeZone)
        for period in BudgetPeriod.allCases {
            let start = clocks[clock].interval(of: period, containing: startedAt).start
            charge(.user(user), period, from: start)
            if let team { charge(.team(team), period, from: start) }
            charge(.org, period, from: start)
        }
        return true
    }

    /// A payer's (scope kind, period) pair as one of nine bits.
    private static func bit(_ scope: PayerScope, _ period: BudgetPeriod) -> UInt16 {
        let kind: UInt16 = switch scope {
        case .user: 0
        case .team: 1
        case .org: 2
        }
        let index: UInt16 = switch period {
        case .day: 0
        case .week: 1
        case .month: 2
        }
        return 1 << (kind * 3 + index)
    }

    /// Spends into one bucket (through one subscript: one hash look-up of its key, not two).
    private static func add(_ spent: Int128, _ tokens: Int128, to bucket: inout QuotaBucket) {
        bucket.spent += spent
        bucket.spentTokens += tokens
    }

    /// Ends an open reservation without spending (the call never reached the provider).
    @discardableResult
    mutating func release(_ reservation: QuotaReservation, now: Int64) -> Bool {
        maintain(now)
        guard let held = open.removeValue(forKey: reservation.id) else {
            abandoned[reservation.id] = nil  // nothing to spend: it never reached the provider
            return false
        }
        forEachBucket(of: held) { $0.unhold(held) }
        return true
    }

    /// Calls `body` once per bucket the reservation holds.
    private mutating func forEachBucket(of reservation: QuotaReservation, _ body: (inout QuotaBucket) -> Void) {
        let budgets = reservation.budgets
        for index in budgets.indices where budgets[index].isTracked && !Self.repeats(budgets, index) {
            let key = QuotaBucketKey(scope: budgets[index].scope, period: budgets[index].period,
                                     start: reservation.periodStart(budgets[index].period))
            body(&buckets[key, default: QuotaBucket()])
        }
    }

    // MARK: Remaining and restore

    mutating func remaining(budgets: [BudgetLimit], now: Int64, timeZone: TimeZone) -> [QuotaStanding] {
        let clock = clockIndex(for: timeZone)
        var standings: [QuotaStanding] = []
        standings.reserveCapacity(budgets.count)
        for budget in budgets where budget.isTracked {
            let interval = clocks[clock].interval(of: budget.period, containing: now)
            let key = QuotaBucketKey(scope: budget.scope, period: budget.period, start: interval.start)
            let bucket = buckets[key] ?? QuotaBucket()
            let usdLeft = budget.usd.map {
                Money(picodollars: Int64(clamping: max(0, Int128($0.picodollars) - bucket.spent - bucket.reserved)))
            }
            let tokensLeft = budget.tokens.map {
                Int(clamping: max(0, Int128($0) - bucket.spentTokens - bucket.reservedTokens))
            }
            standings.append(QuotaStanding(limit: budget, usdLeft: usdLeft, tokensLeft: tokensLeft,
                                           resetsAt: interval.end))
        }
        return standings
    }

    mutating func currentUse(now: Int64, timeZone: TimeZone) -> [BudgetUse] {
        let clock = clockIndex(for: timeZone)
        var starts = PeriodStarts()
        for period in BudgetPeriod.allCases { starts[period] = clocks[clock].interval(of: period, containing: now).start }
        var uses: [BudgetUse] = []
        for (key, bucket) in buckets where key.start == starts[key.period] {
            uses.append(BudgetUse(scope: key.scope, period: key.period,
                                  picodollars: bucket.spent + bucket.reserved,
                                  tokens: bucket.spentTokens + bucket.reservedTokens))
        }
        return uses
    }

    mutating func restore(scope: PayerScope, period: BudgetPeriod, periodStart: Int64, spent: Money.Total,
                          tokens: Int) {
        let key = QuotaBucketKey(scope: scope, period: period, start: periodStart)
        buckets[key, default: QuotaBucket()].spent += spent.picodollars
        buckets[key, default: QuotaBucket()].spentTokens += Int128(tokens)
    }

    // MARK: Housekeeping

    mutating func maintain(_ now: Int64) {
        guard now >= nextSweep else { return }
        nextSweep = now + 60_000_000
        if !abandoned.isEmpty {
            abandoned = abandoned.filter { now <= Self.adding(Self.forgetAbandonedAfter, to: $0.value.abandonAt) }
        }
        if !open.isEmpty {
            for reservation in open.values where now > reservation.abandonAt {
                release(reservation, now: now)
                abandoned[reservation.id] = reservation
            }
        }
        if !buckets.isEmpty {
            let over = buckets.compactMap { entry in
                !entry.value.isHeld && now >= entry.key.start + entry.key.period.longest ? entry.key : nil
            }
            for key in over { buckets.removeValue(forKey: key) }
        }
    }

    /// `time + span`, the latest time there is past it (a book that never abandons).
    private static func adding(_ span: Int64, to time: Int64) -> Int64 {
        let (sum, overflow) = time.addingReportingOverflow(span)
        return overflow ? .max : sum
    }

    /// The clock for `timeZone` (a policy normally has one zone; a few are kept across reloads).
    private mutating func clockIndex(for timeZone: TimeZone) -> Int {
        let identifier = timeZone.identifier
        if let index = clocks.firstIndex(where: { $0.identifier == identifier }) { return index }
        if clocks.count >= 4 { clocks.removeFirst() }
        clocks.append(PeriodClock(CalendarPeriod(timeZone: timeZone)))
        return clocks.count - 1
    }
}

extension BudgetLimit {
    /// A budget with neither limit is ignored.
    public var isTracked: Bool { usd != nil || tokens != nil }
}

extension BudgetPeriod {
    /// At least the longest such period in any zone (DST and zone changes included), in µs: a
    /// bucket this old is certainly over.
    var longest: Int64 {
        let day: Int64 = 86_400_000_000
        switch self {
        case .day: return 2 * day
        case .week: return 8 * day
        case .month: return 32 * day
        }
    }
}

extension QuotaBucket {
    /// Holds `cost` and `tokens` for `budget` if spent + reserved + them stays within its limits
    /// (`alreadyHeld`: this call's hold is already in the bucket, from an earlier budget of the
    /// same scope and period); otherwise changes nothing and says why.
    mutating func hold(_ budget: BudgetLimit, cost: Money, tokens: Int, alreadyHeld: Bool,
                       period: PeriodInterval) -> QuotaRefusal? {
        let addCost = alreadyHeld ? 0 : Int128(cost.picodollars)
        let addTokens = alreadyHeld ? 0 : Int128(tokens)
        let exceeded: QuotaDimension
        if let usd = budget.usd, spent + reserved + addCost > Int128(usd.picodollars) {
            exceeded = .usd
        } else if let limit = budget.tokens, spentTokens + reservedTokens + addTokens > Int128(limit) {
            exceeded = .tokens
        } else {
            reserved += addCost
            reservedTokens += addTokens
            return nil
        }
        // Report what other calls hold: without this call's own hold.
        let othersCost = alreadyHeld ? reserved - Int128(cost.picodollars) : reserved
        let othersTokens = alreadyHeld ? reservedTokens - Int128(tokens) : reservedTokens
        return QuotaRefusal(
            limit: budget, exceeded: exceeded,
            spent: Money(picodollars: Int64(clamping: spent)),
            reserved: Money(picodollars: Int64(clamping: max(0, othersCost))),
            spentTokens: Int(clamping: spentTokens), reservedTokens: Int(clamping: max(0, othersTokens)),
            requested: cost, requestedTokens: tokens, periodStart: period.start, resetsAt: period.end)
    }

    mutating func unhold(_ reservation: QuotaReservation) {
        reserved = max(0, reserved - Int128(reservation.cost.picodollars))
        reservedTokens = max(0, reservedTokens - Int128(reservation.tokens))
    }
}

/// The current day, week and month of one time zone, recomputed only when `now` leaves them
/// (asking Foundation takes microseconds; the request path asks for every call).
public struct PeriodClock: Sendable {
    public let calendar: CalendarPeriod
    public let identifier: String
    private var day = PeriodInterval(start: 0, end: 0)
    private var week = PeriodInterval(start: 0, end: 0)
    private var month = PeriodInterval(start: 0, end: 0)

    public init(_ calendar: CalendarPeriod) {
        self.calendar = calendar
        self.identifier = calendar.timeZone.identifier
    }

    public mutating func interval(of period: BudgetPeriod, containing now: Int64) -> PeriodInterval {
        switch period {
        case .day:
            if !day.contains(now) { day = calendar.interval(of: .day, containing: now) }
            return day
        case .week:
            if !week.contains(now) { week = calendar.interval(of: .week, containing: now) }
            return week
        case .month:
            if !month.contains(now) { month = calendar.interval(of: .month, containing: now) }
            return month
        }
    }
}

/// The period starts a reservation records; `.min` for periods none of its budgets use.
struct PeriodStarts {
    var day: Int64 = .min
    var week: Int64 = .min
    var month: Int64 = .min

    subscript(period: BudgetPeriod) -> Int64 {
        get {
            switch period {
            case .day: return day
            case .week: return week
            case .month: return month
            }
        }
        set {
            switch period {
            case .day: day = newValue
            case .week: week = newValue
            case .month: month = newValue
            }
        }
    }
}
