import Foundation
import Ledger
import Metering
import Policy

/// Replays recorded calls against a candidate policy: which would its plans have refused or
/// clamped, and what would that have saved? Admins change limits with evidence.
///
/// The replay runs the gateway's own limiters (`RateLimiter`, `ConcurrencyGate`, `QuotaBook`,
/// `SpendRateBreaker`) in recorded time: each call starts at its `started_at` and ends at its
/// `ended_at`. Where the gateway uses estimates at admission (prompt size, output cap), the
/// replay uses the call's actual tokens and cost, so a quota is charged exactly what the call
/// cost. Calls that were refused when they were made are left out (they cost nothing).
public enum PolicySimulation {
    public enum Verdict: String, Sendable, CaseIterable {
        case model = "refused_model", concurrency = "refused_concurrency", rate = "refused_rate"
        case cap = "refused_cap", quota = "refused_quota", breaker = "refused_breaker"
    }

    public struct PayerResult: Sendable {
        public var user: String
        public var plan: String
        public var calls = 0
        public var refused: [Verdict: Int] = [:]
        public var clamped = 0
        public var spent = Money.Total()
        public var saved = Money.Total()
    }

    /// `progress` is called after each call replayed, with the number replayed so far.
    public static func run(_ entries: [LedgerEntry], policy: PolicySet,
                           progress: (Int) -> Void = { _ in }) -> [PayerResult] {
        let rates = RateLimiter(), gate = ConcurrencyGate(), quotas = QuotaBook(abandonAfter: .max)
        let breaker = SpendRateBreaker()
        let plans = policy.plans
        var results: [String: PayerResult] = [:]
        var ends: [(at: Int64, user: String, reservation: QuotaReservation?, cost: Money, tokens: Int)] = []

        // `ends` is kept sorted latest-first, so the next call to end is last.
        func settle(until now: Int64) {
            while let last = ends.last, last.at <= now {
                ends.removeLast()
                if let r = last.reservation { quotas.settle(r, cost: last.cost, tokens: last.tokens, now: last.at) }
                gate.release("user:" + last.user)
                if last.cost > .zero { breaker.record(cost: last.cost, now: last.at) }
            }
        }

        for (index, entry) in entries.enumerated() {
            progress(index + 1)
            guard !entry.outcome.isRefusal else { continue }
            settle(until: entry.startedAt)
            let user = entry.user ?? "(none)"
            let plan = plans.effectivePlan(user: user, team: entry.team)
            var result = results[user] ?? PayerResult(user: user, plan: plan.planName)
            result.calls += 1
            var cost = entry.cost
            var tokens = entry.usage.totalTokens
            func refuse(_ verdict: Verdict) {
                result.refused[verdict, default: 0] += 1
                result.saved.add(entry.cost)
            }
            defer { results[user] = result }

            if let model = entry.modelRequested, !plan.allows(model: model) { refuse(.model); continue }
            if let cap = plan.outputCap {
                let asked = entry.outputCapRequested ?? entry.usage.outputTokens
                if asked > cap.maxTokens {
                    if cap.onOver == .reject { refuse(.cap); continue }
                    result.clamped += 1
                    let cut = max(0, entry.usage.outputTokens - cap.maxTokens)
                    let saving = Money(picodollars: Int64(cut) * (entry.price?.output.picodollars ?? 0))
                    cost = Money(picodollars: max(0, cost.picodollars - saving.picodollars))
                    tokens -= cut
                    result.saved.add(saving)
                }
            }
            guard gate.tryAcquire("user:" + user, limit: plan.rate.maxConcurrent) else { refuse(.concurrency); continue }
            if case .limited = rates.admit("user:" + user, limits: plan.rate, tokens: tokens, now: entry.startedAt) {
                gate.release("user:" + user)
                refuse(.rate)
                continue
            }
            if breaker.isTripped(limitPerHour: plans.orgSpendRatePerHour, now: entry.startedAt).tripped {
                gate.release("user:" + user)
                refuse(.breaker)
                continue
            }
            var reservation: QuotaReservation?
            if !plan.budgets.isEmpty {
                switch quotas.reserve(budgets: plan.budgets, cost: cost, tokens: tokens, now: entry.startedAt,
                                      timeZone: plans.timeZone) {
                case .failure:
                    gate.release("user:" + user)
                    refuse(.quota)
                    continue
                case .success(let held):
                    reservation = held
                }
            }
            result.spent.add(cost)
            let position = ends.partitioningIndex { $0.at <= entry.endedAt }
            ends.insert((entry.endedAt, user, reservation, cost, tokens), at: position)
        }
        return results.values.sorted { $0.saved.picodollars > $1.saved.picodollars || ($0.saved == $1.saved && $0.user < $1.user) }
    }

    /// An aligned table: per user, calls replayed, would-be refusals by reason, clamps, spend kept and saved.
    public static func table(_ results: [PayerResult]) -> String {
        let header = ["user", "plan", "calls"] + Verdict.allCases.map(\.rawValue) + ["clamped", "spend", "saved"]
        var rows = results.map { r in
            [r.user, r.plan, String(r.calls)] + Verdict.allCases.map { String(r.refused[$0] ?? 0) }
                + [String(r.clamped), "$" + r.spent.formatted(), "$" + r.saved.formatted()]
        }
        var spent = Money.Total(), saved = Money.Total()
        for r in results { spent.picodollars += r.spent.picodollars; saved.picodollars += r.saved.picodollars }
        rows.append(["TOTAL", "", String(results.reduce(0) { $0 + $1.calls })]
                    + Verdict.allCases.map { v in String(results.reduce(0) { $0 + ($1.refused[v] ?? 0) }) }
                    + [String(results.reduce(0) { $0 + $1.clamped }), "$" + spent.formatted(), "$" + saved.formatted()])
        return TextColumns.render(header: header, rows: rows, labelColumns: 2)
    }
}

extension Array {
    /// The first index whose element satisfies `belongs`, for an array partitioned by it.
    fileprivate func partitioningIndex(where belongs: (Element) -> Bool) -> Int {
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if belongs(self[mid]) { high = mid } else { low = mid + 1 }
        }
        return low
    }
}
