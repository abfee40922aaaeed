import Foundation
import Metering
import Testing
@testable import Policy

@Suite struct QuotaBookTests {
    static let zone = TimeZone(identifier: "UTC")!
    static let now = utc("2026-11-30T12:00:00Z")
    static let dayStart = utc("2026-11-30T00:00:00Z")
    static let monthStart = utc("2026-11-01T00:00:00Z")

    static func dollars(_ text: String) -> Money { Money(dollars: text)! }

    static let bobMonthly = BudgetLimit(scope: .user("bob"), period: .month, usd: dollars("20"))
    static let bobDailyTokens = BudgetLimit(scope: .user("bob"), period: .day, tokens: 10_000)
    static let teamMonthly = BudgetLimit(scope: .team("ml"), period: .month, usd: dollars("100"))

    func reserve(_ book: QuotaBook, _ budgets: [BudgetLimit], _ cost: String, tokens: Int = 0,
                 at now: Int64 = now) -> Result<QuotaReservation, QuotaRefusal> {
        book.reserve(budgets: budgets, cost: Self.dollars(cost), tokens: tokens, now: now, timeZone: Self.zone)
    }

    @Test func reservationsHoldBudgetUntilSettledWithTheActualCost() throws {
        let book = QuotaBook()
        let budgets = [Self.bobMonthly, Self.teamMonthly]
        let r = try reserve(book, budgets, "15").get()
        #expect(book.remaining(budgets: budgets, now: Self.now, timeZone: Self.zone) == [
            QuotaStanding(limit: Self.bobMonthly, usdLeft: Self.dollars("5"), tokensLeft: nil,
                          resetsAt: utc("2026-12-01T00:00:00Z")),
            QuotaStanding(limit: Self.teamMonthly, usdLeft: Self.dollars("85"), tokensLeft: nil,
                          resetsAt: utc("2026-12-01T00:00:00Z")),
        ])
        // Held, the next $6 does not fit; settled at $2, it does.
        #expect(throws: QuotaRefusal.self) { try reserve(book, budgets, "6").get() }
        #expect(book.settle(r, cost: Self.dollars("2"), tokens: 0, now: Self.now))
        let bucket = book.bucket(.user("bob"), .month, start: Self.monthStart)
        #expect(bucket?.spent == 2 * Int128(Money.picosPerDollar) && bucket?.reserved == 0)
        #expect(try reserve(book, budgets, "18").get().cost == Self.dollars("18"))
        #expect(throws: QuotaRefusal.self) { try reserve(book, budgets, "0.000000000001").get() }
    }

    @Test("a reservation grows (a pricier fallback) only if every budget takes the difference; settling ends the grown hold")
    func growingAReservation() throws {
        let book = QuotaBook()
        let budgets = [Self.bobMonthly, Self.teamMonthly]
        let r = try reserve(book, budgets, "5").get()
        let other = try reserve(book, budgets, "10").get()
        // $5 more fits bob's $20 with $10 held beside it; $6 more does not, and changes nothing.
        #expect(throws: QuotaRefusal.self) {
            try book.grow(r, cost: Self.dollars("11"), tokens: 0, timeZone: Self.zone)?.get()
        }
        #expect(book.bucket(.user("bob"), .month, start: Self.monthStart)?.reserved == 15 * Int128(Money.picosPerDollar))
        #expect(book.bucket(.team("ml"), .month, start: Self.monthStart)?.reserved == 15 * Int128(Money.picosPerDollar))
        let grown = try #require(try book.grow(r, cost: Self.dollars("10"), tokens: 0, timeZone: Self.zone)?.get())
        #expect(grown.id == r.id && grown.cost == Self.dollars("10"))
        #expect(book.bucket(.user("bob"), .month, start: Self.monthStart)?.reserved == 20 * Int128(Money.picosPerDollar))
        #expect(book.settle(grown, cost: Self.dollars("3"), tokens: 0, now: Self.now))
        #expect(book.settle(other, cost: .zero, tokens: 0, now: Self.now))
        let bucket = book.bucket(.user("bob"), .month, start: Self.monthStart)
        #expect(bucket?.reserved == 0 && bucket?.spent == 3 * Int128(Money.picosPerDollar))
        #expect(book.grow(r, cost: Self.dollars("1"), tokens: 0, timeZone: Self.zone) == nil)  // no longer open
    }

    @Test func refusalNamesTheFirstBudgetThatWouldBeExceeded() throws {
        let book = QuotaBook()
        book.restore(scope: .user("bob"), period: .month, periodStart: Self.monthStart,
                     spent: Self.dollars("19.98"), tokens: 0)
        book.restore(scope: .team("ml"), period: .month, periodStart: Self.monthStart,
                     spent: Self.dollars("99.99"), tokens: 0)
        let held = try reserve(book, [Self.bobMonthly], "0.01").get()
        let budgets = [Self.bobDailyTokens, Self.bobMonthly, Self.teamMonthly]
        guard case .failure(let refusal) = reserve(book, budgets, "0.05", tokens: 500) else {
            Issue.record("admitted"); return
        }
        #expect(refusal == QuotaRefusal(
            limit: Self.bobMonthly, exceeded: .usd, spent: Self.dollars("19.98"), reserved: Self.dollars("0.01"),
            spentTokens: 0, reservedTokens: 0, requested: Self.dollars("0.05"), requestedTokens: 500,
            periodStart: Self.monthStart, resetsAt: utc("2026-12-01T00:00:00Z")))
        #expect(refusal.description == "user bob's monthly budget of $20.00 has too little left: $19.98 spent, "
                + "$0.01 held by calls in flight, this call needs up to $0.05; resets 2026-12-01T00:00:00Z")
        // Nothing was held by the refused call, not even in the budgets checked before the failing one.
        #expect(book.bucket(.user("bob"), .day, start: Self.dayStart) == nil)
        #expect(book.openReservations == 1)
        book.release(held, now: Self.now)
        // The team's is next in line.
        guard case .failure(let team) = reserve(book, budgets, "0.02", tokens: 500) else {
            Issue.record("admitted"); return
        }
        #expect(team.limit == Self.teamMonthly && team.spent == Self.dollars("99.99"))
    }

    @Test("a budget spent and held to its limit is exhausted; one with too little left says so")
    func refusalSaysWhetherAnythingIsLeft() throws {
        let book = QuotaBook()
        _ = try reserve(book, [Self.bobDailyTokens], "0", tokens: 10_000).get()
        guard case .failure(let refusal) = reserve(book, [Self.bobDailyTokens], "0", tokens: 1) else {
            Issue.record("admitted"); return
        }
        #expect(refusal.description.hasPrefix("user bob's daily token budget of 10000 is exhausted: 0 spent, 10000 held"))
    }

    @Test func tokenBudgetsCountTokens() throws {
        let book = QuotaBook()
        let r = try reserve(book, [Self.bobDailyTokens], "0", tokens: 9_000).get()
        guard case .failure(let refusal) = reserve(book, [Self.bobDailyTokens], "0", tokens: 1_001) else {
            Issue.record("admitted"); return
        }
        #expect(refusal.exceeded == .tokens && refusal.reservedTokens == 9_000)
        #expect(refusal.description == "user bob's daily token budget of 10000 has too little left: 0 spent, "
                + "9000 held by calls in flight, this call needs up to 1001; resets 2026-12-01T00:00:00Z")
        book.settle(r, cost: .zero, tokens: 4_000, now: Self.now)
        #expect(book.remaining(budgets: [Self.bobDailyTokens], now: Self.now, timeZone: Self.zone)
                == [QuotaStanding(limit: Self.bobDailyTokens, usdLeft: nil, tokensLeft: 6_000,
                                  resetsAt: utc("2026-12-01T00:00:00Z"))])
    }

    @Test func lifecycleEndsOnceSettleOrRelease() throws {
        let book = QuotaBook()
        let a = try reserve(book, [Self.bobMonthly], "5").get()
        #expect(book.settle(a, cost: Self.dollars("3"), tokens: 10, now: Self.now))
        #expect(!book.settle(a, cost: Self.dollars("3"), tokens: 10, now: Self.now))  // double settle: no-op
        #expect(!book.release(a, now: Self.now))
        let b = try reserve(book, [Self.bobMonthly], "5").get()
        #expect(a.id != b.id)
        #expect(book.release(b, now: Self.now))
        #expect(!book.settle(b, cost: Self.dollars("5"), tokens: 10, now: Self.now))  // settle after release: no-op
        let bucket = book.bucket(.user("bob"), .month, start: Self.monthStart)
        #expect(bucket == QuotaBucket(spent: 3 * Int128(Money.picosPerDollar), reserved: 0, spentTokens: 10,
                                      reservedTokens: 0))
        #expect(book.openReservations == 0)
    }

    @Test func aCallSpanningMidnightIsChargedToThePeriodItWasReservedIn() throws {
        let book = QuotaBook()
        let budgets = [BudgetLimit(scope: .user("bob"), period: .day, usd: Self.dollars("1")), Self.bobMonthly]
        let beforeMidnight = utc("2026-11-30T23:59:59Z")
        let r = try reserve(book, budgets, "0.80", at: beforeMidnight).get()
        let afterMidnight = utc("2026-12-01T00:00:01Z")
        // Today is fresh even while yesterday's call runs.
        #expect(book.remaining(budgets: budgets, now: afterMidnight, timeZone: Self.zone).map(\.usdLeft)
                == [Self.dollars("1"), Self.dollars("20")])
        book.settle(r, cost: Self.dollars("0.50"), tokens: 0, now: afterMidnight)
        #expect(book.bucket(.user("bob"), .day, start: Self.dayStart)?.spent == Int128(Self.dollars("0.50").picodollars))
        #expect(book.bucket(.user("bob"), .month, start: Self.monthStart)?.spent == Int128(Self.dollars("0.50").picodollars))
        #expect(book.remaining(budgets: budgets, now: afterMidnight, timeZone: Self.zone).map(\.usdLeft)
                == [Self.dollars("1"), Self.dollars("20")])
    }

    @Test func budgetsWithoutLimitsAreIgnoredAndRepeatsHoldOnce() throws {
        let book = QuotaBook()
        let none = BudgetLimit(scope: .org, period: .day)
        let tokens = BudgetLimit(scope: .user("bob"), period: .month, tokens: 1_000)
        let budgets = [none, Self.bobMonthly, tokens]  // bob's month twice: usd and tokens
        let r = try reserve(book, budgets, "1", tokens: 100).get()
        #expect(book.trackedBuckets == 1)
        #expect(book.bucket(.user("bob"), .month, start: Self.monthStart)
                == QuotaBucket(spent: 0, reserved: Int128(Money.picosPerDollar), spentTokens: 0, reservedTokens: 100))
        #expect(book.remaining(budgets: budgets, now: Self.now, timeZone: Self.zone).count == 2)
        book.settle(r, cost: Self.dollars("1"), tokens: 100, now: Self.now)
        #expect(book.bucket(.user("bob"), .month, start: Self.monthStart)
                == QuotaBucket(spent: Int128(Money.picosPerDollar), reserved: 0, spentTokens: 100, reservedTokens: 0))
        #expect(try reserve(book, [], "1000").get().budgets.isEmpty)
    }

    @Test func aRefusalByARepeatedBudgetUndoesTheHoldAndReportsOnlyOthers() throws {
        let book = QuotaBook()
        let usd = BudgetLimit(scope: .user("bob"), period: .month, usd: Self.dollars("1"))
        let tokens = BudgetLimit(scope: .user("bob"), period: .month, tokens: 100)
        let other = try reserve(book, [usd, tokens], "0.25", tokens: 40).get()
        guard case .failure(let refusal) = reserve(book, [usd, tokens], "0.5", tokens: 61) else {
            Issue.record("admitted"); return
        }
        #expect(refusal.limit == tokens && refusal.exceeded == .tokens)
        #expect(refusal.reservedTokens == 40 && refusal.reserved == Self.dollars("0.25"))
        #expect(book.bucket(.user("bob"), .month, start: Self.monthStart)
                == QuotaBucket(spent: 0, reserved: Int128(Self.dollars("0.25").picodollars), spentTokens: 0,
                               reservedTokens: 40))
        book.release(other, now: Self.now)
        // A call too large for a fresh budget leaves no empty bucket behind.
        #expect(throws: QuotaRefusal.self) {
            try reserve(book, [BudgetLimit(scope: .team("new"), period: .day, usd: Self.dollars("1"))], "2").get()
        }
        #expect(book.bucket(.team("new"), .day, start: Self.dayStart) == nil)
    }

    @Test func oldPeriodsArePrunedButNotWhileHeld() throws {
        let days: Int64 = 86_400_000_000
        let book = QuotaBook(abandonAfter: 3 * days)
        let day = BudgetLimit(scope: .user("bob"), period: .day, usd: Self.dollars("1"))
        let settled = try reserve(book, [day], "0.1").get()
        book.settle(settled, cost: Self.dollars("0.1"), tokens: 0, now: Self.now)
        _ = try reserve(book, [BudgetLimit(scope: .user("amy"), period: .day, usd: Self.dollars("1"))], "0.1").get()
        #expect(book.trackedBuckets == 2)
        // Two days on: bob's old day goes; amy's is still held by her open call.
        let later = Self.now + 2 * days
        _ = try reserve(book, [day], "0.1", at: later).get()
        #expect(book.bucket(.user("bob"), .day, start: Self.dayStart) == nil)
        #expect(book.bucket(.user("amy"), .day, start: Self.dayStart)?.reserved == Int128(Self.dollars("0.1").picodollars))
        #expect(book.openReservations == 2)
        // Past `abandonAfter` amy's call is released, then her old day pruned; bob's newer call stays.
        _ = try reserve(book, [day], "0.1", at: Self.now + 3 * days + 1).get()
        #expect(book.openReservations == 2)
        #expect(book.bucket(.user("amy"), .day, start: Self.dayStart) == nil)
        #expect(book.trackedBuckets == 2)
    }

    @Test("a call slower than abandonAfter loses its hold but is still charged when it ends, once")
    func abandonedReservationIsChargedLate() throws {
        let book = QuotaBook(abandonAfter: 3_600_000_000)
        let r = try reserve(book, [Self.bobMonthly], "5").get()
        // Housekeeping after two hours releases the hold...
        _ = book.remaining(budgets: [Self.bobMonthly], now: Self.now, timeZone: Self.zone)
        #expect(book.settle(nil, user: "amy", team: nil, cost: Self.dollars("1"), tokens: 0, startedAt: Self.now + 7_200_000_000,
                            now: Self.now + 7_200_000_000, timeZone: Self.zone))
        #expect(book.openReservations == 0)
        #expect(book.bucket(.user("bob"), .month, start: Self.monthStart)?.reserved ?? 0 == 0)
        // ... and the call, ending later, is charged to its budget and to the scopes it did not hold.
        let end = Self.now + 7_300_000_000
        #expect(book.settle(r, user: "bob", team: "ml", cost: Self.dollars("2"), tokens: 0, startedAt: Self.now, now: end,
                            timeZone: Self.zone))
        #expect(book.bucket(.user("bob"), .month, start: Self.monthStart)?.spent == 2 * Int128(Money.picosPerDollar))
        #expect(book.bucket(.team("ml"), .month, start: Self.monthStart)?.spent == 2 * Int128(Money.picosPerDollar))
        #expect(!book.settle(r, user: "bob", team: "ml", cost: Self.dollars("2"), tokens: 0, startedAt: Self.now, now: end,
                             timeZone: Self.zone))
        #expect(book.bucket(.user("bob"), .month, start: Self.monthStart)?.spent == 2 * Int128(Money.picosPerDollar))
    }

    @Test("a call that may run longer than abandonAfter keeps its hold until its longest life is over")
    func longCallKeepsItsHold() throws {
        let hour: Int64 = 3_600_000_000
        let book = QuotaBook(abandonAfter: hour)
        let long = try book.reserve(budgets: [Self.bobMonthly], cost: Self.dollars("5"), tokens: 0, now: Self.now,
                                    holdAtLeast: 3 * hour, timeZone: Self.zone).get()
        _ = try reserve(book, [Self.bobMonthly], "1").get()
        let held = { book.bucket(.user("bob"), .month, start: Self.monthStart)?.reserved ?? 0 }
        // Two hours on, housekeeping releases the one-hour call only.
        let sweep = { (at: Int64) -> Void in
            _ = book.settle(nil, user: "amy", team: nil, cost: .zero, tokens: 0, startedAt: at, now: at, timeZone: Self.zone)
        }
        sweep(Self.now + 2 * hour)
        #expect(book.openReservations == 1)
        #expect(held() == 5 * Int128(Money.picosPerDollar))
        // Past its three hours it goes too, and is still charged when it ends.
        sweep(Self.now + 3 * hour + 60_000_001)
        #expect(book.openReservations == 0)
        #expect(held() == 0)
        #expect(book.settle(long, cost: Self.dollars("4"), tokens: 0, now: Self.now + 4 * hour))
        #expect(book.bucket(.user("bob"), .month, start: Self.monthStart)?.spent == 4 * Int128(Money.picosPerDollar))
    }

    @Test("without any budget, settling still drops the buckets of periods that are over")
    func unbudgetedBucketsArePruned() throws {
        let book = QuotaBook()
        let day: Int64 = 86_400_000_000
        for d in 0..<40 {
            let at = Self.now + Int64(d) * day
            #expect(book.settle(nil, user: "u\(d)", team: nil, cost: Self.dollars("1"), tokens: 0, startedAt: at, now: at,
                                timeZone: Self.zone))
        }
        // At most the last two days' (a day bucket lives two days), a few weeks' and two months'
        // user buckets, and the org's: far fewer than the 40 × 6 made.
        #expect(book.trackedBuckets < 40)
    }

    @Test("spend counts for every scope of the payer, budgeted or not, once: a budget added later starts from it")
    func spendCountsForUnbudgetedScopes() throws {
        let book = QuotaBook()
        let started = Self.now - 60_000_000
        // No budget at all: user, team and org are charged in the day, week and month of the start.
        #expect(book.settle(nil, user: "bob", team: "ml", cost: Self.dollars("3"), tokens: 300, startedAt: started,
                            now: Self.now, timeZone: Self.zone))
        #expect(book.trackedBuckets == 9)
        #expect(book.bucket(.org, .day, start: Self.dayStart)?.spent == 3 * Int128(Money.picosPerDollar))
        // A reservation settles its own budgets once; the other scopes get the same actual spend.
        let r = try reserve(book, [Self.bobMonthly], "5").get()
        #expect(book.settle(r, user: "bob", team: "ml", cost: Self.dollars("2"), tokens: 200, startedAt: started,
                            now: Self.now, timeZone: Self.zone))
        #expect(!book.settle(r, user: "bob", team: "ml", cost: Self.dollars("2"), tokens: 200, startedAt: started,
                             now: Self.now, timeZone: Self.zone))
        let bobMonth = try #require(book.bucket(.user("bob"), .month, start: Self.monthStart))
        #expect(bobMonth.spent == 5 * Int128(Money.picosPerDollar) && bobMonth.reserved == 0 && bobMonth.spentTokens == 500)
        #expect(book.bucket(.team("ml"), .month, start: Self.monthStart)?.spent == 5 * Int128(Money.picosPerDollar))
        // A team budget the policy adds now sees the $5 already spent.
        #expect(book.remaining(budgets: [Self.teamMonthly], now: Self.now, timeZone: Self.zone).first?.usdLeft
                == Self.dollars("95"))
        // A call that cost nothing adds no buckets.
        #expect(book.settle(nil, user: "amy", team: nil, cost: .zero, tokens: 0, startedAt: started, now: Self.now,
                            timeZone: Self.zone))
        #expect(book.bucket(.user("amy"), .day, start: Self.dayStart) == nil)
    }

    @Test("refusals state amounts as configured: cents at least, more decimals when the amount has them")
    func refusalAmountsAreNotRoundedToCents() {
        let cases: [(String, String)] = [("20", "$20.00"), ("19.98", "$19.98"), ("0.005", "$0.005"), ("0.0077123", "$0.007712"),
                                         ("0.00015", "$0.00015"), ("0.000000001", "$0.000000001"), ("0", "$0.00"), ("1234.5", "$1234.50")]
        for (amount, shown) in cases { #expect(QuotaRefusal.dollars(Self.dollars(amount)) == shown) }
    }

    @Test func restoreAddsToAPeriod() throws {
        let book = QuotaBook()
        var part = Money.Total()
        part.add(Self.dollars("40"))
        book.restore(scope: .team("ml"), period: .month, periodStart: Self.monthStart, spent: part, tokens: 1_000)
        book.restore(scope: .team("ml"), period: .month, periodStart: Self.monthStart, spent: part, tokens: 1_000)
        #expect(book.remaining(budgets: [Self.teamMonthly], now: Self.now, timeZone: Self.zone).first?.usdLeft
                == Self.dollars("20"))
        #expect(throws: QuotaRefusal.self) { try reserve(book, [Self.teamMonthly], "20.01").get() }
    }

    @Test func periodsFollowThePolicyTimeZone() throws {
        let book = QuotaBook()
        let berlin = TimeZone(identifier: "Europe/Berlin")!
        let day = BudgetLimit(scope: .org, period: .day, usd: Self.dollars("1"))
        // 23:30 UTC on 30 Nov is already 1 December in Berlin.
        let late = utc("2026-11-30T23:30:00Z")
        let r = book.reserve(budgets: [day], cost: Self.dollars("1"), tokens: 0, now: late, timeZone: berlin)
        #expect(try r.get().periodStart(.day) == utc("2026-11-30T23:00:00Z"))
        #expect(book.remaining(budgets: [day], now: late, timeZone: Self.zone).first?.usdLeft == Self.dollars("1"))
        #expect(book.remaining(budgets: [day], now: late, timeZone: berlin).first?.resetsAt == utc("2026-12-01T23:00:00Z"))
    }
}
