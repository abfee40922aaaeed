import Foundation
import Ledger
import Metering
import Policy

/// The counting half of admission, shared by every connection: concurrency, rate limits, quota
/// reservations and the org spend-rate breaker. Each is one lock per operation (see Policy).
final class Enforcer: Sendable {
    let concurrency = ConcurrencyGate()
    let rates = RateLimiter()
    let quotas = QuotaBook()
    let breaker = SpendRateBreaker()

    /// Output reserved for a call that names no output limit and has no plan cap: the worst case
    /// is otherwise unbounded. Settlement charges the real output either way; give plans a
    /// `max_output_tokens` to make the quota bound hard.
    static let defaultOutputReserve = 4_096

    /// Rebuilds quota state from the ledger: each budget period's spend so far, per user, team and
    /// org, and the last hour's spend for the breaker. Run before serving, so a restart neither
    /// resets nor double-counts.
    func rebuild(from reader: any LedgerSource, plans: PlanBook, now: Int64) throws {
        let calendar = CalendarPeriod(timeZone: plans.timeZone)
        for period in BudgetPeriod.allCases {
            let start = calendar.interval(of: period, containing: now).start
            var teams: [String: (Money.Total, Int)] = [:]
            var org = (Money.Total(), 0)
            for spend in try reader.spend(since: start) {
                if let user = spend.user {
                    quotas.restore(scope: .user(user), period: period, periodStart: start, spent: spend.cost,
                                   tokens: spend.tokens)
                }
                if let team = spend.team {
                    teams[team, default: (Money.Total(), 0)].0.picodollars += spend.cost.picodollars
                    teams[team, default: (Money.Total(), 0)].1 += spend.tokens
                }
                org.0.picodollars += spend.cost.picodollars
                org.1 += spend.tokens
            }
            for (team, spent) in teams {
                quotas.restore(scope: .team(team), period: period, periodStart: start, spent: spent.0, tokens: spent.1)
            }
            quotas.restore(scope: .org, period: period, periodStart: start, spent: org.0, tokens: org.1)
        }
        // Each minute's spend in its own minute, so it leaves the breaker's window when it should.
        for (minute, cost) in try reader.spendPerMinute(since: now - 3_600_000_000) {
            breaker.record(cost: Money(picodollars: Int64(clamping: cost.picodollars)), now: max(minute, now - 3_600_000_000))
        }
    }
}

/// Who pays for a call and on what terms.
struct Payer: Sendable {
    var user: String
    var team: String?
    var plan: EffectivePlan
}

/// What admission took from the shared counters, to be given back or settled when the call ends.
struct Hold: Sendable {
    var payer: Payer
    var concurrencyKey: String
    /// The user's and the key's rate meters, charged together.
    var rateKeys: [String]
    var estimatedTokens: Int
    var reservation: QuotaReservation?
    var rate: RateStatus
    var timeZone: TimeZone

    /// Settles the call: the reservation becomes the actual cost, the rate estimate the actual
    /// tokens, the concurrency slot is freed. Runs exactly once per admitted call.
    func settle(in enforcer: Enforcer, cost: Money, tokens: Int, now: Int64) {
        if let reservation { enforcer.quotas.settle(reservation, cost: cost, tokens: tokens, now: now) }
        for key in rateKeys {
            enforcer.rates.correct(key, limits: payer.plan.rate, estimatedTokens: estimatedTokens,
                                   actualTokens: tokens, now: now)
        }
        enforcer.concurrency.release(concurrencyKey)
        if cost > .zero { enforcer.breaker.record(cost: cost, now: now) }
    }
}
