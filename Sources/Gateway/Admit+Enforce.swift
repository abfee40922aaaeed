import Foundation
import Metering
import NIOCore
import Policy
import PostgresLedger

extension Admit {
    /// The counting checks, in the policy's order, once the call is otherwise admissible:
    /// concurrency, rate limits, the spend-rate breaker, then the quota reservation of the worst
    /// case. What one check took is given back when a later one refuses. The budget periods are
    /// those containing `startedAt`, the call's ledger time, as with shared budgets (below) and
    /// as the start-up rebuild and the charge of unbudgeted scopes count it.
    static func enforce(_ admission: Admission, endpoint: Endpoint, policy: PolicySet, enforcer: Enforcer,
                        startedAt: Int64, now: Int64) -> Result<Hold, Refusal> {
        let local: LocalLimits
        switch takeLocalLimits(admission, endpoint: endpoint, policy: policy, enforcer: enforcer, now: now) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let taken): local = taken
        }
        let plan = admission.payer.plan
        guard !plan.budgets.isEmpty else { return .success(local.hold(quota: nil)) }
        switch enforcer.quotas.reserve(budgets: plan.budgets, cost: local.worstCase, tokens: local.estimatedTokens,
                                       now: startedAt, holdAtLeast: admission.longestCallMicros,
                                       timeZone: local.timeZone) {
        case .failure(let refusal):
            local.giveBack(to: enforcer, now: now)
            return .failure(quotaRefusal(refusal, admission, endpoint))
        case .success(let held):
            return .success(local.hold(quota: .local(held)))
        }
    }

    /// `enforce` with budgets shared by the replicas (PostgreSQL): the same local checks, then
    /// the reservation in `shared` under the call's ledger id, answered on `loop`. A refusal is
    /// the same as the single-node one; an unreachable database refuses the call (fail closed).
    /// The budget periods are those containing `startedAt`, the call's ledger time, so that the
    /// counters and the ledger's sums agree on which period a call near a boundary belongs to.
    static func enforce(_ admission: Admission, endpoint: Endpoint, policy: PolicySet, enforcer: Enforcer,
                        shared: SharedQuotaBook, callID: String, startedAt: Int64, now: Int64,
                        on loop: any EventLoop) -> EventLoopFuture<Result<Hold, Refusal>> {
        let local: LocalLimits
        switch takeLocalLimits(admission, endpoint: endpoint, policy: policy, enforcer: enforcer, now: now) {
        case .failure(let refusal): return loop.makeSucceededFuture(.failure(refusal))
        case .success(let taken): local = taken
        }
        let plan = admission.payer.plan
        guard !plan.budgets.isEmpty else { return loop.makeSucceededFuture(.success(local.hold(quota: nil))) }
        return shared.reserve(callID: callID, budgets: plan.budgets, cost: local.worstCase, tokens: local.estimatedTokens,
                              now: startedAt, holdAtLeast: admission.longestCallMicros,
                              timeZone: policy.plans.timeZone, on: loop)
            .map { result -> Result<Hold, Refusal> in
                switch result {
                case .failure(let refusal):
                    local.giveBack(to: enforcer, now: now)
                    return .failure(quotaRefusal(refusal, admission, endpoint))
                case .success(let held):
                    return .success(local.hold(quota: .shared(held)))
                }
            }
            .recover { _ in
                // The book logs why (PostgreSQL's errors are not the caller's business).
                local.giveBack(to: enforcer, now: now)
                return .failure(Refusal(.quotaStateUnavailable,
                    "The gateway cannot reach its shared budget state (PostgreSQL); it admits no call until it can. Retry shortly.",
                    headers: [("retry-after", "5")]))
            }
    }

    private static func quotaRefusal(_ refusal: QuotaRefusal, _ admission: Admission, _ endpoint: Endpoint) -> Refusal {
        Refusal(.quotaExhausted, "Quota exhausted: \(refusal). This call's worst case counts \(admission.worstCaseParts(on: endpoint)).")
    }

    /// Concurrency, rate limits and the spend-rate breaker: the checks every replica makes alone.
    private static func takeLocalLimits(_ admission: Admission, endpoint: Endpoint, policy: PolicySet,
                                        enforcer: Enforcer, now: Int64) -> Result<LocalLimits, Refusal> {
        let payer = admission.payer
        let plan = payer.plan
        // The user's key, for both the concurrency gate and the rate counters.
        let userKey = "user:" + payer.user
        guard enforcer.concurrency.tryAcquire(userKey, limit: plan.rate.maxConcurrent) else {
            return .failure(Refusal(.tooManyConcurrent,
                "Too many calls in flight for \(payer.user): plan '\(plan.planName)' allows \(plan.rate.maxConcurrent ?? 0) at a time.",
                headers: LimitHeaders.retryAfter(1_000_000)))
        }
        let (worstCase, estimated) = admission.worstCase(on: endpoint)
        // The payer's limits hold per user and per key at once: a user's keys share the user's
        // allowance, and one key (a service key naming many end users) cannot exceed it either.
        let keyRateKey = "key:" + admission.principal.keyId
        let rate: RateStatus
        switch enforcer.rates.admit(userKey, limits: plan.rate, and: keyRateKey, limits: plan.rate,
                                    tokens: estimated, now: now) {
        case .limited(let status, let which, let retryAfter):
            enforcer.concurrency.release(userKey)
            let limit = which == .requests ? "\(plan.rate.requestsPerMinute ?? 0) requests" : "\(plan.rate.tokensPerMinute ?? 0) tokens"
            return .failure(Refusal(.rateLimited(which),
                "Rate limit reached for \(payer.user) on plan '\(plan.planName)': \(limit) per minute. Retry after \(LimitHeaders.duration(retryAfter)).",
                headers: LimitHeaders.retryAfter(retryAfter) + LimitHeaders.rate(status)))
        case .allowed(let status):
            rate = status
        }
        let local = LocalLimits(payer: payer, concurrencyKey: userKey, rateKeys: [userKey, keyRateKey],
                                estimatedTokens: estimated, worstCase: worstCase, rate: rate,
                                timeZone: enforcer.budgetTimeZone(policy))
        let breaker = enforcer.breaker.isTripped(limitPerHour: policy.plans.orgSpendRatePerHour, now: now)
        if breaker.tripped {
            local.giveBack(to: enforcer, now: now)
            return .failure(Refusal(.spendRateTripped,
                "The organisation's spend rate is over its limit of \((policy.plans.orgSpendRatePerHour ?? .zero).dollarsText) per hour; calls resume as it falls, in about \(LimitHeaders.duration(breaker.retryAfterMicros)) at the current spend.",
                headers: LimitHeaders.retryAfter(breaker.retryAfterMicros)))
        }
        return .success(local)
    }
}

/// What the local checks took (a concurrency slot, the rate meters' estimate), before the quota
/// step; given back if that step refuses.
private struct LocalLimits: Sendable {
    var payer: Payer
    var concurrencyKey: String
    var rateKeys: [String]
    var estimatedTokens: Int
    /// The call's worst-case cost, which the quota step reserves.
    var worstCase: Money
    var rate: RateStatus
    var timeZone: TimeZone

    func giveBack(to enforcer: Enforcer, now: Int64) {
        for key in rateKeys {
            enforcer.rates.giveBack(key, limits: payer.plan.rate, estimatedTokens: estimatedTokens, now: now)
        }
        enforcer.concurrency.release(concurrencyKey)
    }

    func hold(quota: QuotaHold?) -> Hold {
        Hold(payer: payer, concurrencyKey: concurrencyKey, rateKeys: rateKeys, estimatedTokens: estimatedTokens,
             quota: quota, rate: rate, timeZone: timeZone)
    }
}
