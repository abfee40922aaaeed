import Foundation
import Ledger
import Metering
import Policy

/// Replays recorded calls against a candidate policy: which would its plans have refused or
/// clamped, and what would that have saved? Admins change limits with evidence.
///
/// The replay runs the gateway's own limiters (`RateLimiter`, `ConcurrencyGate`, `QuotaBook`,
/// `SpendRateBreaker`) in recorded time: each call starts at its `started_at` and ends at its
/// `ended_at`. As the gateway does, admission holds each call's worst case against its budgets
/// and its tokens-per-minute (the input it used, which stands for the gateway's prompt estimate,
/// plus the output limit it would go upstream with under the candidate plan, or
/// `Endpoint.defaultOutputReserve` without one), and the call's end puts its actual cost and
/// tokens in place of it. Calls that were refused when they were made are left out (they cost
/// nothing).
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

    /// Replays `entries` (in start order) and returns each payer's result, largest saving first.
    public static func run(_ entries: [LedgerEntry], policy: PolicySet) -> [PayerResult] {
        var replay = Replay(policy: policy)
        for entry in entries { replay.replay(entry) }
        return replay.results()
    }

    /// One replay, fed the ledger's calls in start order one at a time, so a month of calls is
    /// never held in memory: only the calls in flight at a moment and one result per payer.
    public struct Replay {
        private let rates = RateLimiter(), gate = ConcurrencyGate(), quotas = QuotaBook(abandonAfter: .max)
        private let breaker = SpendRateBreaker()
        private let plans: PlanBook
        private let prices: PriceBook
        private var byUser: [String: PayerResult] = [:]
        /// Kept sorted latest-first, so the next call to end is last.
        private var ends: [Ending] = []

        public init(policy: PolicySet) {
            plans = policy.plans
            prices = policy.prices
        }

        /// Each payer's result, largest saving first.
        public func results() -> [PayerResult] {
            byUser.values.sorted { $0.saved.picodollars > $1.saved.picodollars || ($0.saved == $1.saved && $0.user < $1.user) }
        }

        private mutating func settle(until now: Int64) {
            while let last = ends.last, last.at <= now {
                ends.removeLast()
                let key = "user:" + last.user
                if let r = last.reservation { quotas.settle(r, cost: last.cost, tokens: last.tokens, now: last.at) }
                rates.correct(key, limits: last.rate, estimatedTokens: last.estimatedTokens, actualTokens: last.tokens,
                              now: last.at)
                gate.release(key)
                if last.cost > .zero { breaker.record(cost: last.cost, now: last.at) }
            }
        }

        /// Replays one call; it must not have started before the one replayed last.
        public mutating func replay(_ entry: LedgerEntry) {
            guard !entry.outcome.isRefusal else { return }
            settle(until: entry.startedAt)
            let user = entry.user ?? "(none)"
            let plan = plans.effectivePlan(user: user, team: entry.team)
            var result = byUser[user] ?? PayerResult(user: user, plan: plan.planName)
            result.calls += 1
            var cost = entry.cost
            var tokens = entry.usage.totalTokens
            func refuse(_ verdict: Verdict) {
                result.refused[verdict, default: 0] += 1
                result.saved.add(entry.cost)
            }
            defer { byUser[user] = result }

            if let model = entry.modelRequested, !plan.allows(model: model) { refuse(.model); return }
            let endpoint = Endpoint(rawValue: entry.route) ?? .chatCompletions
            // The output limit the call goes upstream with: the one it named, else none; a plan
            // cap refuses a larger one (`reject`) or clamps it, and is added where none was named.
            var applied = entry.outputCapRequested
            if let cap = plan.outputCap {
                if cap.onOver == .reject, (applied ?? 0) > cap.maxTokens { refuse(.cap); return }
                applied = min(applied ?? cap.maxTokens, cap.maxTokens)
                if (entry.outputCapRequested ?? entry.usage.outputTokens) > cap.maxTokens {
                    result.clamped += 1
                    let cut = max(0, entry.usage.outputTokens - cap.maxTokens)
                    let saving = Money(picodollars: Int64(cut) * (entry.price?.output.picodollars ?? 0))
                    cost = Money(picodollars: max(0, cost.picodollars - saving.picodollars))
                    tokens -= cut
                    result.saved.add(saving)
                }
            }
            // The worst case admission holds, as the gateway sizes it: the whole prompt (cache reads
            // and writes too), at the cache-write price for a call that wrote to the cache.
            let reserve = endpoint.outputReserve(applied: applied)
            let prompt = entry.usage.totalInputTokens
            let estimatedTokens = prompt + reserve
            let kinds = TokenKinds(writesPromptCache: entry.usage.cacheWriteTokens > 0,
                                   audioInputTokens: entry.usage.audioInputTokens,
                                   audioAnswer: entry.usage.audioOutputTokens > 0,
                                   webSearches: entry.usage.webSearches, fileSearches: entry.usage.fileSearches)
            // A call that ended without usage (a provider's error) has no price on its row, yet was
            // admitted against its worst case at the model's price: the candidate's, that day.
            let price = entry.price ?? entry.modelRequested.flatMap {
                prices.price(for: $0, on: Day(unixSeconds: entry.startedAt / 1_000_000))
            }
            let worstCase = price?.worstCase(inputTokens: prompt, outputTokens: reserve, kinds: kinds) ?? cost
            guard gate.tryAcquire("user:" + user, limit: plan.rate.maxConcurrent) else { refuse(.concurrency); return }
            if case .limited = rates.admit("user:" + user, limits: plan.rate, tokens: estimatedTokens, now: entry.startedAt) {
                gate.release("user:" + user)
                refuse(.rate)
                return
            }
            // A later step's refusal gives back what the earlier ones took, as admission does.
            func giveBack() {
                rates.giveBack("user:" + user, limits: plan.rate, estimatedTokens: estimatedTokens, now: entry.startedAt)
                gate.release("user:" + user)
            }
            if breaker.isTripped(limitPerHour: plans.orgSpendRatePerHour, now: entry.startedAt).tripped {
                giveBack()
                refuse(.breaker)
                return
            }
            var reservation: QuotaReservation?
            if !plan.budgets.isEmpty {
                switch quotas.reserve(budgets: plan.budgets, cost: worstCase, tokens: estimatedTokens, now: entry.startedAt,
                                      timeZone: plans.timeZone) {
                case .failure:
                    giveBack()
                    refuse(.quota)
                    return
                case .success(let held):
                    reservation = held
                }
            }
            result.spent.add(cost)
            let position = ends.partitioningIndex { $0.at <= entry.endedAt }
            ends.insert(Ending(at: entry.endedAt, user: user, rate: plan.rate, reservation: reservation, cost: cost,
                               tokens: tokens, estimatedTokens: estimatedTokens), at: position)
        }
    }

    /// A replayed call still in flight: what its end settles.
    private struct Ending {
        var at: Int64
        var user: String
        var rate: RateLimits
        var reservation: QuotaReservation?
        var cost: Money
        var tokens: Int
        var estimatedTokens: Int
    }

    /// An aligned table: per user, calls replayed, would-be refusals by reason, clamps, spend kept
    /// and saved, then the total over every user. `everyone: false` lists only the users the
    /// candidate changes something for (a refusal or a clamp), and says how many were left out:
    /// with thousands of users the rest is noise.
    public static func table(_ results: [PayerResult], everyone: Bool = true) -> String {
        let header = ["user", "plan", "calls"] + Verdict.allCases.map(\.rawValue) + ["clamped", "spend", "saved"]
        let listed = everyone ? results : results.filter { !$0.refused.isEmpty || $0.clamped > 0 }
        var rows = listed.map { r in
            [r.user, r.plan, String(r.calls)] + Verdict.allCases.map { String(r.refused[$0] ?? 0) }
                + [String(r.clamped), "$" + r.spent.formatted(), "$" + r.saved.formatted()]
        }
        var spent = Money.Total(), saved = Money.Total()
        for r in results { spent.picodollars += r.spent.picodollars; saved.picodollars += r.saved.picodollars }
        rows.append(["TOTAL", "", String(results.reduce(0) { $0 + $1.calls })]
                    + Verdict.allCases.map { v in String(results.reduce(0) { $0 + ($1.refused[v] ?? 0) }) }
                    + [String(results.reduce(0) { $0 + $1.clamped }), "$" + spent.formatted(), "$" + saved.formatted()])
        var text = TextColumns.render(header: header, rows: rows, labelColumns: 2)
        let unchanged = results.count - listed.count
        if unchanged > 0 {
            text += "\(unchanged) user\(unchanged == 1 ? "" : "s") with nothing refused or clamped not listed (in TOTAL; --all lists them)\n"
        }
        return text
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
