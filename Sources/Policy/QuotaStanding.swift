import Metering

/// What is left of one budget in the current period, for response headers.
public struct QuotaStanding: Sendable, Hashable {
    public var limit: BudgetLimit
    /// `usd − spent − reserved`, at least zero; nil when the budget has no usd limit.
    public var usdLeft: Money?
    /// `tokens − spent − reserved`, at least zero; nil when the budget has no tokens limit.
    public var tokensLeft: Int?
    /// The end of the current period (Unix µs).
    public var resetsAt: Int64

    public init(limit: BudgetLimit, usdLeft: Money?, tokensLeft: Int?, resetsAt: Int64) {
        self.limit = limit
        self.usdLeft = usdLeft
        self.tokensLeft = tokensLeft
        self.resetsAt = resetsAt
    }
}

/// What one scope has used of its current period: spent plus held by calls in flight.
public struct BudgetUse: Sendable, Hashable {
    public var scope: PayerScope
    public var period: BudgetPeriod
    public var picodollars: Int128
    public var tokens: Int128

    public init(scope: PayerScope, period: BudgetPeriod, picodollars: Int128, tokens: Int128) {
        self.scope = scope
        self.period = period
        self.picodollars = picodollars
        self.tokens = tokens
    }
}
