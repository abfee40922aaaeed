import Dispatch
import Foundation
import Metering
import Synchronization
import Testing
@testable import Policy

/// Invariant 3: quotas cannot be overshot by concurrency.
@Suite struct QuotaConcurrencyTests {
    static let zone = TimeZone(identifier: "UTC")!
    static let now = utc("2026-11-30T12:00:00Z")
    static let monthStart = utc("2026-11-01T00:00:00Z")
    static let cent = Money.picosPerDollar / 100

    @Test func fiveHundredThreadsGetExactlyTheCallsThatFit() {
        let book = QuotaBook()
        // $2.50 and 25,000 tokens: exactly 25 calls of $0.10 / 1,000 tokens worst case.
        let budgets = [BudgetLimit(scope: .user("bob"), period: .month, usd: Money(picodollars: 250 * Self.cent)),
                       BudgetLimit(scope: .user("bob"), period: .day, tokens: 25_000)]
        let won = Mutex<[QuotaReservation]>([])
        DispatchQueue.concurrentPerform(iterations: 500) { i in
            let result = book.reserve(budgets: budgets, cost: Money(picodollars: 10 * Self.cent), tokens: 1_000,
                                      now: Self.now + Int64(i), timeZone: Self.zone)
            if case .success(let r) = result { won.withLock { $0.append(r) } }
        }
        let reservations = won.withLock { $0 }
        #expect(reservations.count == 25)
        #expect(Set(reservations.map(\.id)).count == 25)
        DispatchQueue.concurrentPerform(iterations: reservations.count) { i in
            book.settle(reservations[i], cost: Money(picodollars: Int64(i % 11) * Self.cent), tokens: 900,
                        now: Self.now + 1_000)
        }
        let month = book.bucket(.user("bob"), .month, start: Self.monthStart)!
        let expected = (0..<25).reduce(Int128(0)) { $0 + Int128($1 % 11) * Int128(Self.cent) }
        #expect(month.spent == expected && month.spent <= 250 * Int128(Self.cent))
        #expect(month.reserved == 0 && month.reservedTokens == 0)
        #expect(book.bucket(.user("bob"), .day, start: utc("2026-11-30T00:00:00Z"))?.spentTokens == Int128(25 * 900))
        #expect(book.openReservations == 0)
    }

    @Test func twoUsersSharingATeamBudget() async {
        let book = QuotaBook()
        // Each user may have 15 calls of $0.04; the team only 25 between them.
        func budgets(_ user: String) -> [BudgetLimit] {
            [BudgetLimit(scope: .user(user), period: .month, usd: Money(picodollars: 60 * Self.cent)),
             BudgetLimit(scope: .team("ml"), period: .month, usd: Money(picodollars: 100 * Self.cent))]
        }
        let plans = ["bob": budgets("bob"), "amy": budgets("amy")]
        let won = await withTaskGroup(of: (String, QuotaReservation?).self) { group in
            for i in 0..<500 {
                let user = i.isMultiple(of: 2) ? "bob" : "amy"
                group.addTask {
                    let result = book.reserve(budgets: plans[user]!, cost: Money(picodollars: 4 * Self.cent),
                                              tokens: 0, now: Self.now, timeZone: Self.zone)
                    return (user, try? result.get())
                }
            }
            var won: [(String, QuotaReservation)] = []
            for await (user, r) in group { if let r { won.append((user, r)) } }
            return won
        }
        #expect(won.count == 25)
        #expect(won.filter { $0.0 == "bob" }.count <= 15 && won.filter { $0.0 == "amy" }.count <= 15)
        await withTaskGroup(of: Void.self) { group in
            for (_, r) in won {
                group.addTask { book.settle(r, cost: Money(picodollars: 3 * Self.cent), tokens: 0, now: Self.now) }
            }
        }
        let team = book.bucket(.team("ml"), .month, start: Self.monthStart)!
        #expect(team.spent == 75 * Int128(Self.cent) && team.reserved == 0)
        let users = ["bob", "amy"].map { book.bucket(.user($0), .month, start: Self.monthStart)! }
        #expect(users.map(\.reserved) == [0, 0] && users[0].spent + users[1].spent == team.spent)
        #expect(book.openReservations == 0)
    }

    /// Reservations and settlements interleaved from many threads: the budget is never exceeded
    /// at any moment (spent + reserved ≤ limit whenever a reservation is admitted), and at the
    /// end the spend is exactly what was settled.
    @Test func interleavedReserveAndSettleNeverOvershoot() {
        let book = QuotaBook()
        let limit = Money(picodollars: 100 * Self.cent)
        let budgets = [BudgetLimit(scope: .org, period: .month, usd: limit)]
        let settledTotal = Mutex<Int128>(0)
        DispatchQueue.concurrentPerform(iterations: 2_000) { i in
            guard case .success(let r) = book.reserve(budgets: budgets, cost: Money(picodollars: 5 * Self.cent),
                                                      tokens: 0, now: Self.now, timeZone: Self.zone) else { return }
            let bucket = book.bucket(.org, .month, start: Self.monthStart)!
            #expect(bucket.spent + bucket.reserved <= Int128(limit.picodollars))
            let actual = Int64(i % 3) * Self.cent / 10
            if i.isMultiple(of: 7) {
                book.release(r, now: Self.now)
            } else {
                book.settle(r, cost: Money(picodollars: actual), tokens: 0, now: Self.now)
                settledTotal.withLock { $0 += Int128(actual) }
            }
        }
        let bucket = book.bucket(.org, .month, start: Self.monthStart)!
        #expect(bucket.spent == settledTotal.withLock { $0 })
        #expect(bucket.spent <= Int128(limit.picodollars) && bucket.reserved == 0)
        #expect(book.openReservations == 0)
    }
}
