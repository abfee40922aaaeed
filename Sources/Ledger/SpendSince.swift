import Metering

/// What one payer (user within a team) spent since a moment: the input for rebuilding quota
/// state at start-up, so that a restart neither resets nor double-counts budgets.
public struct PayerSpend: Sendable, Hashable {
    public var user: String?
    public var team: String?
    public var cost: Money.Total
    /// All tokens, input (cached and cache-write included) and output.
    public var tokens: Int

    public init(user: String?, team: String?, cost: Money.Total, tokens: Int) {
        self.user = user
        self.team = team
        self.cost = cost
        self.tokens = tokens
    }
}

extension LedgerReader {
    /// Spend per (user, team) of the calls that started at or after `since`. Refusals cost
    /// nothing and are left out; every other outcome (errors and cancellations included) counts.
    public func spend(since: Int64) throws -> [PayerSpend] {
        try withConnection { connection in
            let s = try connection.prepare("""
                SELECT user, team, SUM(cost_pd),
                       SUM(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens)
                FROM calls WHERE started_at >= ?1 AND outcome NOT LIKE 'refused\\_%' ESCAPE '\\'
                GROUP BY user, team
                """)
            s.bind(since, at: 1)
            var rows: [PayerSpend] = []
            while try s.step() {
                rows.append(PayerSpend(user: s.optionalString(at: 0), team: s.optionalString(at: 1),
                                       cost: Money.Total(picodollars: Int128(s.int64(at: 2))),
                                       tokens: s.int(at: 3)))
            }
            return rows
        }
    }
}

extension LedgerReader {
    /// Spend per minute (Unix µs of the minute's start → cost) of the calls that started at or
    /// after `since`, refusals left out: rebuilds a sliding-hour spend rate at start-up.
    public func spendPerMinute(since: Int64) throws -> [(minute: Int64, cost: Money.Total)] {
        try withConnection { connection in
            let s = try connection.prepare("""
                SELECT started_at / 60000000, SUM(cost_pd) FROM calls
                WHERE started_at >= ?1 AND outcome NOT LIKE 'refused\\_%' ESCAPE '\\'
                GROUP BY 1 ORDER BY 1
                """)
            s.bind(since, at: 1)
            var rows: [(minute: Int64, cost: Money.Total)] = []
            while try s.step() {
                rows.append((s.int64(at: 0) * 60_000_000, Money.Total(picodollars: Int128(s.int64(at: 1)))))
            }
            return rows
        }
    }
}
