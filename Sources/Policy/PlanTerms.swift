import Metering

/// A limit as written in plans.yaml: a number, or `unlimited`, which lifts a limit the plan sets
/// (a user override needs a way to say "no limit" that differs from "not overridden").
enum Ceiling<Value: Sendable & Hashable>: Sendable, Hashable {
    case at(Value)
    case unlimited

    var value: Value? {
        if case .at(let value) = self { return value }
        return nil
    }
}

/// Budget amounts per calendar period as written; a missing period inherits (for a user) or
/// means no budget for that period.
struct PeriodBudgets: Sendable, Hashable {
    var usd: [BudgetPeriod: Ceiling<Money>] = [:]
    var tokens: [BudgetPeriod: Ceiling<Int>] = [:]

    /// Field by field: bob's `monthly_usd` replaces his plan's and keeps its `daily_usd`.
    func overridden(by other: PeriodBudgets) -> PeriodBudgets {
        PeriodBudgets(usd: usd.merging(other.usd) { _, new in new },
                      tokens: tokens.merging(other.tokens) { _, new in new })
    }

    /// One limit per period that has an amount, day before week before month.
    func limits(for scope: PayerScope) -> [BudgetLimit] {
        BudgetPeriod.allCases.compactMap { period in
            let usd = usd[period]?.value, tokens = tokens[period]?.value
            guard usd != nil || tokens != nil else { return nil }
            return BudgetLimit(scope: scope, period: period, usd: usd, tokens: tokens)
        }
    }
}

/// The fields of one plan, or a user's overrides of them; nil means "not written".
struct PlanTerms: Sendable, Hashable {
    var requestsPerMinute: Ceiling<Int>?
    var tokensPerMinute: Ceiling<Int>?
    var maxConcurrent: Ceiling<Int>?
    var maxOutputTokens: Ceiling<Int>?
    var onOutputOverCap: OverCapAction?
    var budgets = PeriodBudgets()
    /// Replaced whole by an override: a list is one choice, not fields to merge.
    var models: [ModelPattern]?

    /// These terms with every field `user` wrote taken from `user`.
    func overridden(by user: PlanTerms) -> PlanTerms {
        PlanTerms(requestsPerMinute: user.requestsPerMinute ?? requestsPerMinute,
                  tokensPerMinute: user.tokensPerMinute ?? tokensPerMinute,
                  maxConcurrent: user.maxConcurrent ?? maxConcurrent,
                  maxOutputTokens: user.maxOutputTokens ?? maxOutputTokens,
                  onOutputOverCap: user.onOutputOverCap ?? onOutputOverCap,
                  budgets: budgets.overridden(by: user.budgets),
                  models: user.models ?? models)
    }

    /// The plan these terms give `user`, with the user's own budgets only (team and org
    /// budgets are added per call: they depend on the caller's team, not on the plan).
    func effective(planName: String, user: String) -> EffectivePlan {
        EffectivePlan(
            planName: planName,
            models: models,
            rate: RateLimits(requestsPerMinute: requestsPerMinute?.value, tokensPerMinute: tokensPerMinute?.value,
                             maxConcurrent: maxConcurrent?.value),
            outputCap: maxOutputTokens?.value.map { OutputCap(maxTokens: $0, onOver: onOutputOverCap ?? .clamp) },
            budgets: budgets.limits(for: .user(user)))
    }
}
