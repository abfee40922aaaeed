import Foundation
import Ledger
import Metering
import NIOCore
import NIOPosix
import Policy
import PostgresLedger

/// The counting half of admission, shared by every connection: concurrency, rate limits, quota
/// reservations and the org spend-rate breaker. Each is one lock per operation (see Policy).
///
/// With several replicas (PostgreSQL), budgets live in `sharedQuotas` instead of `quotas`; the
/// other limits stay per process (see docs/postgres-quotas.md for their bound).
final class Enforcer: Sendable {
    let concurrency = ConcurrencyGate()
    let rates = RateLimiter()
    let quotas = QuotaBook()
    let breaker = SpendRateBreaker()
    /// The budgets shared with the other replicas; nil: this process's `quotas` are the budgets.
    let sharedQuotas: SharedQuotaBook?
    /// The zone this process's budget periods are cut in: the policy's at start-up. `quotas` was
    /// rebuilt from the ledger in it; a reload that changes `time_zone` takes effect for them at
    /// the next restart (a new zone's periods would start empty).
    let startupTimeZone: TimeZone

    init(sharedQuotas: SharedQuotaBook? = nil, timeZone: TimeZone) {
        self.sharedQuotas = sharedQuotas
        self.startupTimeZone = timeZone
    }

    /// The zone budgets are counted in: the start-up one for this process's book; the policy's
    /// for shared budgets, whose counters start from the ledger's sum whatever the zone.
    func budgetTimeZone(_ policy: PolicySet) -> TimeZone {
        sharedQuotas == nil ? startupTimeZone : policy.plans.timeZone
    }

    /// Quota reservations of this process's calls in flight.
    var openReservations: Int { sharedQuotas?.openReservations ?? quotas.openReservations }

    /// What is left of each budget in its current period. With shared budgets this asks
    /// PostgreSQL and waits: call it off the event loops only (the admin API's thread pool).
    func remainingBlocking(budgets: [BudgetLimit], now: Int64, timeZone: TimeZone) throws -> [QuotaStanding] {
        guard let sharedQuotas else { return quotas.remaining(budgets: budgets, now: now, timeZone: timeZone) }
        return try sharedQuotas.remaining(budgets: budgets, now: now, timeZone: timeZone,
                                          on: MultiThreadedEventLoopGroup.singleton.next()).wait()
    }

    /// Rebuilds quota state from the ledger: each budget period's spend so far, per user, team and
    /// org, and the last hour's spend for the breaker. Run before serving, so a restart neither
    /// resets nor double-counts. Shared budgets need no rebuild: their counters outlive replicas
    /// (and start from the ledger's sum when created).
    func rebuild(from reader: any LedgerSource, plans: PlanBook, now: Int64) throws {
        let calendar = CalendarPeriod(timeZone: plans.timeZone)
        for period in BudgetPeriod.allCases where sharedQuotas == nil {
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

extension Payer {
    /// `user` under `team`, on the plan the policy gives them.
    init(user: String, team: String?, plans: PlanBook) {
        self.init(user: user, team: team, plan: plans.effectivePlan(user: user, team: team))
    }
}

/// What admission took from the shared counters, to be given back or settled when the call ends.
struct Hold: Sendable {
    var payer: Payer
    var concurrencyKey: String
    /// The user's and the key's rate meters, charged together.
    var rateKeys: [String]
    var estimatedTokens: Int
    var quota: QuotaHold?
    var rate: RateStatus
    var timeZone: TimeZone

    /// Settles the call: the reservation becomes the actual cost, the rate estimate the actual
    /// tokens, the concurrency slot is freed. Runs exactly once per admitted call, before its row
    /// is appended. A shared reservation is settled later, by `QuotaHold.settleShared`. With local budgets,
    /// the spend counts for every scope of the payer, budgeted or not (`QuotaBook.settle`): a
    /// budget a reload adds then starts from the period's spend, as after a restart.
    func settle(in enforcer: Enforcer, cost: Money, tokens: Int, startedAt: Int64, now: Int64) {
        if enforcer.sharedQuotas == nil {
            var reservation: QuotaReservation?
            if case .local(let held) = quota { reservation = held }
            enforcer.quotas.settle(reservation, user: payer.user, team: payer.team, cost: cost, tokens: tokens,
                                   startedAt: startedAt, now: now, timeZone: timeZone)
        }
        for key in rateKeys {
            enforcer.rates.correct(key, limits: payer.plan.rate, estimatedTokens: estimatedTokens,
                                   actualTokens: tokens, now: now)
        }
        enforcer.concurrency.release(concurrencyKey)
        if cost > .zero { enforcer.breaker.record(cost: cost, now: now) }
    }

    /// What was left of each budget when the call was admitted, its own hold not counted (for the
    /// `x-tokenctl-budget-*` headers).
    func budgetStandings(in enforcer: Enforcer, now: Int64) -> [QuotaStanding] {
        switch quota {
        case .shared(let reservation):
            return reservation.standings
        case .local(let reservation):
            var standings = enforcer.quotas.remaining(budgets: payer.plan.budgets, now: now, timeZone: timeZone)
            for i in standings.indices {
                standings[i].usdLeft = standings[i].usdLeft.map { Money(picodollars: $0.picodollars + reservation.cost.picodollars) }
            }
            return standings
        case nil:
            return enforcer.quotas.remaining(budgets: payer.plan.budgets, now: now, timeZone: timeZone)
        }
    }
}

/// A call's quota reservation: in this process's book, or in the book shared by the replicas.
enum QuotaHold: Sendable {
    case local(QuotaReservation)
    case shared(SharedQuotaReservation)

    /// Settles a shared reservation with the call's actual use, once its ledger row has committed:
    /// should this replica die before, the reaper charges the row (docs/postgres-quotas.md).
    /// Nothing to wait for: the client's answer does not depend on it. (A local one was settled
    /// with the hold, `Hold.settle`.)
    func settleShared(in enforcer: Enforcer, cost: Money, tokens: Int, on loop: any EventLoop) {
        guard case .shared(let reservation) = self, let book = enforcer.sharedQuotas else { return }
        book.settleRetrying(reservation, cost: cost, tokens: tokens, on: loop)
    }

    /// The worst case held against budgets; nil when no budget applied (nothing bounds the call).
    /// `tokens` is nil when no budget counts tokens.
    var heldAgainstBudgets: (cost: Money, tokens: Int?)? {
        switch self {
        case .local(let held):
            guard held.budgets.contains(where: \.isTracked) else { return nil }
            return (held.cost, held.budgets.contains { $0.isTracked && $0.tokens != nil } ? held.tokens : nil)
        case .shared(let held):
            guard held.holdsBudget else { return nil }
            return (held.cost, held.standings.contains { $0.limit.tokens != nil } ? held.tokens : nil)
        }
    }
}
