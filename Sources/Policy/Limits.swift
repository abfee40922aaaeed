import Metering

/// Who a budget belongs to. A user budget is charged to the paying user (the key's user, or the
/// end user a service key names); a team budget to all its members; the org budget to everyone.
public enum PayerScope: Sendable, Hashable, CustomStringConvertible {
    case user(String)
    case team(String)
    case org

    public var description: String {
        switch self {
        case .user(let name): return "user \(name)"
        case .team(let name): return "team \(name)"
        case .org: return "org"
        }
    }
}

/// Calendar periods, cut in the policy's time zone.
public enum BudgetPeriod: String, Sendable, Hashable, CaseIterable {
    case day, week, month
}

/// One budget: at most `usd` and/or `tokens` per `period` for `scope`.
public struct BudgetLimit: Sendable, Hashable {
    public var scope: PayerScope
    public var period: BudgetPeriod
    public var usd: Money?
    public var tokens: Int?

    public init(scope: PayerScope, period: BudgetPeriod, usd: Money? = nil, tokens: Int? = nil) {
        self.scope = scope
        self.period = period
        self.usd = usd
        self.tokens = tokens
    }
}

/// Per-user (and per-key) rate limits; nil means unlimited.
public struct RateLimits: Sendable, Hashable {
    public var requestsPerMinute: Int?
    public var tokensPerMinute: Int?
    public var maxConcurrent: Int?

    public init(requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil, maxConcurrent: Int? = nil) {
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.maxConcurrent = maxConcurrent
    }
}

/// What happens to a request asking for more output than the plan allows.
public enum OverCapAction: String, Sendable, Hashable, CaseIterable {
    case clamp, reject
}

public struct OutputCap: Sendable, Hashable {
    public var maxTokens: Int
    public var onOver: OverCapAction

    public init(maxTokens: Int, onOver: OverCapAction = .clamp) {
        self.maxTokens = maxTokens
        self.onOver = onOver
    }
}

/// Everything the policy says about one payer, resolved from plans.yaml: plan defaults, then
/// the user's overrides, plus the team and org budgets that also apply.
public struct EffectivePlan: Sendable, Hashable {
    public var planName: String
    /// Models the plan allows; nil allows every routed model.
    public var models: [ModelPattern]?
    /// Whether `models` is the user's own list (plans.yaml's `users`), not their plan's: a
    /// refusal names the list an admin must edit.
    public var modelsFromUser = false
    public var rate: RateLimits
    public var outputCap: OutputCap?
    /// User, team and org budgets, in that order.
    public var budgets: [BudgetLimit]

    public init(planName: String, models: [ModelPattern]? = nil, rate: RateLimits = .init(),
                outputCap: OutputCap? = nil, budgets: [BudgetLimit] = []) {
        self.planName = planName
        self.models = models
        self.rate = rate
        self.outputCap = outputCap
        self.budgets = budgets
    }

    public func allows(model: String) -> Bool {
        models?.contains { $0.matches(model) } ?? true
    }
}
