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
    /// Spend per (user, team) of the calls that started at or after `since`: every call's cost
    /// and tokens (errors and cancellations included; a refusal's are none), payers with only
    /// refusals left out.
    ///
    /// Read as a report (`ReportAggregation`): the payer rollup cells for whole UTC days and
    /// hours, raw rows only for a ragged first hour and the calls not yet rolled up. Start-up
    /// asks this for the day, week and month: grouping a month's raw rows took 40 s for 3M calls
    /// (20,000 users), and the port is not bound meanwhile.
    public func spend(since: Int64) throws -> [PayerSpend] {
        var query = ReportQuery(since: since, until: .max, groupBy: [.user, .team])
        query.figures = .sums
        return try report(query).rows.compactMap { row in
            let figures = row.figures
            // A payer with only refusals spent nothing: left out.
            guard figures.requests > figures.refused else { return nil }
            func name(_ label: String) -> String? { label == ReportDimension.noneLabel ? nil : label }
            return PayerSpend(user: name(row.values[0]), team: name(row.values[1]), cost: figures.cost,
                              tokens: figures.totalTokens)
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
