import Policy

/// Budget utilisation at scrape time: what each budget of plans.yaml has used of its current
/// period (spent plus held by calls in flight), as a ratio of its limit.
///
/// Team and org budgets get one series each (bounded by plans.yaml). Per-user budgets are
/// summarised per plan (highest utilisation, users at or over 80 % and 100 %), so no series
/// carries a user name. A zero limit reads 0 until something is used, then 1.
enum BudgetGauges {
    static let utilisation = "tokenctl_budget_utilisation_ratio"
    static let userMax = "tokenctl_user_budget_utilisation_max_ratio"
    static let usersOver = "tokenctl_users_over_budget"
    static let thresholds: [(label: String, ratio: Double)] = [("0.8", 0.8), ("1", 1.0)]

    private struct Key: Hashable, Comparable {
        var a: String, b: String, period: String, dimension: String
        static func < (l: Key, r: Key) -> Bool { (l.a, l.b, l.period, l.dimension) < (r.a, r.b, r.period, r.dimension) }
    }

    private struct UserSummary {
        var max = 0.0
        var over = [0, 0]
    }

    static func write(plans: PlanBook, uses: [BudgetUse], into out: inout MetricsExposition) {
        var used: [PayerScope: [BudgetPeriod: BudgetUse]] = [:]
        for use in uses { used[use.scope, default: [:]][use.period] = use }

        // Team and org budgets: every budget the policy sets, 0 when nothing was used yet.
        var shared: [Key: Double] = [:]
        func addShared(_ budgets: [BudgetLimit], scope: PayerScope, scopeLabel: String, team: String) {
            for budget in budgets where budget.scope == scope {
                let use = used[scope]?[budget.period]
                for (dimension, ratio) in ratios(budget, use) {
                    let key = Key(a: scopeLabel, b: team, period: budget.period.rawValue, dimension: dimension)
                    shared[key] = max(shared[key] ?? 0, ratio)
                }
            }
        }
        for team in plans.teamNames {
            addShared(plans.budgets(ofTeam: team), scope: .team(team), scopeLabel: "team", team: team)
        }
        addShared(plans.orgBudgets, scope: .org, scopeLabel: "org", team: "")

        // Per-user budgets, summarised per plan; each plan with user budgets shows even when idle.
        var summaries: [Key: UserSummary] = [:]
        for name in plans.planNames {
            for budget in plans.plan(named: name)?.budgets ?? [] {
                for dimension in dimensions(budget) {
                    summaries[Key(a: name, b: "", period: budget.period.rawValue, dimension: dimension)] = UserSummary()
                }
            }
        }
        for (scope, periods) in used {
            guard case .user(let user) = scope else { continue }
            let plan = plans.effectivePlan(user: user, team: nil)
            for budget in plan.budgets where budget.scope == scope {
                for (dimension, ratio) in ratios(budget, periods[budget.period]) {
                    let key = Key(a: plan.planName, b: "", period: budget.period.rawValue, dimension: dimension)
                    var summary = summaries[key] ?? UserSummary()
                    summary.max = max(summary.max, ratio)
                    for (index, threshold) in thresholds.enumerated() where ratio >= threshold.ratio {
                        summary.over[index] += 1
                    }
                    summaries[key] = summary
                }
            }
        }

        out.family(utilisation, "gauge",
                   "Budget used in its current period (spent plus held by calls in flight) over its limit, per team and org budget")
        for (key, ratio) in shared.sorted(by: { $0.key < $1.key }) {
            out.sample(utilisation, ["scope": key.a, "team": key.b, "period": key.period, "dimension": key.dimension], ratio)
        }
        out.family(userMax, "gauge", "Highest per-user budget utilisation among the plan's users active in the period")
        for (key, summary) in summaries.sorted(by: { $0.key < $1.key }) {
            out.sample(userMax, ["plan": key.a, "period": key.period, "dimension": key.dimension], summary.max)
        }
        out.family(usersOver, "gauge", "Users of the plan whose own budget utilisation is at or over the threshold")
        for (key, summary) in summaries.sorted(by: { $0.key < $1.key }) {
            for (index, threshold) in thresholds.enumerated() {
                out.sample(usersOver, ["plan": key.a, "period": key.period, "dimension": key.dimension,
                                       "threshold": threshold.label], Double(summary.over[index]))
            }
        }
    }

    private static func dimensions(_ budget: BudgetLimit) -> [String] {
        (budget.usd != nil ? ["usd"] : []) + (budget.tokens != nil ? ["tokens"] : [])
    }

    private static func ratios(_ budget: BudgetLimit, _ use: BudgetUse?) -> [(String, Double)] {
        var result: [(String, Double)] = []
        if let usd = budget.usd {
            result.append(("usd", ratio(use?.picodollars ?? 0, Int128(usd.picodollars))))
        }
        if let tokens = budget.tokens {
            result.append(("tokens", ratio(use?.tokens ?? 0, Int128(tokens))))
        }
        return result
    }

    private static func ratio(_ used: Int128, _ limit: Int128) -> Double {
        guard limit > 0 else { return used > 0 ? 1 : 0 }
        return used.double / limit.double
    }
}
