import Foundation
import Metering

/// Which amount of a budget a call would exceed.
public enum QuotaDimension: String, Sendable, Hashable {
    case usd, tokens
}

/// Why admission refused a call: the first of its budgets (in the plan's order: user, team,
/// org) that the call's worst case would exceed, with the numbers for the message.
public struct QuotaRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    public var limit: BudgetLimit
    public var exceeded: QuotaDimension
    /// Settled spend and what calls in flight hold, in the current period.
    public var spent: Money
    public var reserved: Money
    public var spentTokens: Int
    public var reservedTokens: Int
    /// What this call asked to reserve.
    public var requested: Money
    public var requestedTokens: Int
    /// The current period `[periodStart, resetsAt)` (Unix µs); the budget is fresh at `resetsAt`.
    public var periodStart: Int64
    public var resetsAt: Int64

    public init(limit: BudgetLimit, exceeded: QuotaDimension, spent: Money, reserved: Money,
                spentTokens: Int, reservedTokens: Int, requested: Money, requestedTokens: Int,
                periodStart: Int64, resetsAt: Int64) {
        self.limit = limit
        self.exceeded = exceeded
        self.spent = spent
        self.reserved = reserved
        self.spentTokens = spentTokens
        self.reservedTokens = reservedTokens
        self.requested = requested
        self.requestedTokens = requestedTokens
        self.periodStart = periodStart
        self.resetsAt = resetsAt
    }

    /// "user bob's monthly budget of $20.00 has too little left: $19.98 spent, $0.01 held by
    /// calls in flight, this call needs up to $0.05; resets 2026-12-01T00:00:00Z" ("is
    /// exhausted" once spent and held reach the budget).
    public var description: String {
        let adjective: String
        switch limit.period {
        case .day: adjective = "daily"
        case .week: adjective = "weekly"
        case .month: adjective = "monthly"
        }
        var text = "\(limit.scope)'s \(adjective) "
        switch exceeded {
        case .usd:
            let budget = limit.usd ?? .zero
            let used = Int128(spent.picodollars) + Int128(reserved.picodollars)
            let state = used >= Int128(budget.picodollars) ? "is exhausted" : "has too little left"
            text += "budget of \(Self.dollars(budget)) \(state): \(Self.dollars(spent)) spent"
            if reserved > .zero { text += ", \(Self.dollars(reserved)) held by calls in flight" }
            text += ", this call needs up to \(Self.dollars(requested))"
        case .tokens:
            let budget = limit.tokens ?? 0
            let used = Int128(spentTokens) + Int128(reservedTokens)  // counters clamp at Int.max
            let state = used >= Int128(budget) ? "is exhausted" : "has too little left"
            text += "token budget of \(budget) \(state): \(spentTokens) spent"
            if reservedTokens > 0 { text += ", \(reservedTokens) held by calls in flight" }
            text += ", this call needs up to \(requestedTokens)"
        }
        return text + "; resets " + Self.timestamp(resetsAt)
    }

    static func dollars(_ money: Money) -> String { money.dollarsText }

    /// ISO 8601 in UTC, to the second.
    static func timestamp(_ micros: Int64) -> String {
        var seconds = micros / 1_000_000
        if micros % 1_000_000 != 0, micros > 0 { seconds += 1 }
        let date = Date(timeIntervalSince1970: TimeInterval(seconds))
        return date.formatted(.iso8601)
    }
}
