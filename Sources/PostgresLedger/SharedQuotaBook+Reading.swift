import Foundation
import Metering
import NIOCore
import Policy
import PostgresNIO

/// Reading the shared quota state: for the admin API and tests (admission reads nothing: the
/// reservation answers with the standings).
extension SharedQuotaBook {
    /// One counter's sums (for tests and the admin API): nil if no call has reserved in that
    /// period yet.
    public func counter(scope: PayerScope, period: BudgetPeriod, periodStart: Int64,
                        on loop: any EventLoop) -> EventLoopFuture<SharedQuotaCounter?> {
        let logger = self.logger, key = scope.sharedKey, name = period.rawValue
        return connections.withConnection(on: loop) { connection in
            connection.query("""
                SELECT spent::text, reserved::text, spent_tokens::text, reserved_tokens::text FROM quota_counters
                WHERE scope = \(key) AND period = \(name) AND period_start = \(periodStart)
                """, logger: logger)
        }.flatMapThrowing { result in
            guard let row = result.rows.first else { return nil }
            let (spent, reserved, spentTokens, reservedTokens) = try row.decode((String, String, String, String).self)
            guard let a = Int128(spent), let b = Int128(reserved), let c = Int128(spentTokens), let d = Int128(reservedTokens) else {
                throw SharedQuotaError.unexpectedAnswer("quota_counters holds a non-integer amount")
            }
            return SharedQuotaCounter(spent: a, reserved: b, spentTokens: c, reservedTokens: d)
        }
    }

    /// What is left of each tracked budget in its current period, in order (for the admin API).
    /// A budget no call has reserved against in this period yet is read from the ledger.
    public func remaining(budgets: [BudgetLimit], now: Int64, timeZone: TimeZone,
                          on loop: any EventLoop) -> EventLoopFuture<[QuotaStanding]> {
        let tracked = budgets.filter(\.isTracked)
        guard !tracked.isEmpty else { return loop.makeSucceededFuture([]) }
        let intervals = periodIntervals(tracked, now: now, timeZone: timeZone)
        let scopes = tracked.map(\.scope.sharedKey), periods = tracked.map(\.period.rawValue)
        let starts = intervals.map(\.start), ends = intervals.map(\.end)
        let query: PostgresQuery = """
            SELECT least(coalesce(q.spent, l.o_cost) + coalesce(q.reserved, 0), 9223372036854775807)::int8,
                   least(coalesce(q.spent_tokens, l.o_tokens) + coalesce(q.reserved_tokens, 0), 9223372036854775807)::int8
            FROM unnest(\(scopes)::text[], \(periods)::text[], \(starts)::int8[], \(ends)::int8[])
                 WITH ORDINALITY AS k(s, p, st, en, ord)
            LEFT JOIN quota_counters q ON q.scope = k.s AND q.period = k.p AND q.period_start = k.st
            LEFT JOIN LATERAL tokenctl_quota_ledger_spend(k.s, k.st, k.en) l ON q.scope IS NULL
            ORDER BY k.ord
            """
        let logger = self.logger
        return connections.withConnection(on: loop) { connection in
            connection.query(query, logger: logger)
        }.flatMapThrowing { result in
            let used = try result.rows.map { try $0.decode((Int64, Int64).self) }
            guard used.count == tracked.count else {
                throw SharedQuotaError.unexpectedAnswer("\(used.count) standings for \(tracked.count) budgets")
            }
            return zip(tracked, zip(used, intervals)).map { budget, pair in
                let ((usd, tokens), interval) = pair
                return QuotaStanding(
                    limit: budget,
                    usdLeft: budget.usd.map { Money(picodollars: max(0, $0.picodollars &- usd)) },
                    tokensLeft: budget.tokens.map { Int(clamping: max(0, Int64($0) &- tokens)) },
                    resetsAt: interval.end)
            }
        }
    }

    /// Holds not yet settled, across all replicas (`replica`: of one replica only).
    public func openHolds(replica: String? = nil, on loop: any EventLoop) -> EventLoopFuture<Int> {
        let logger = self.logger
        return connections.withConnection(on: loop) { connection in
            if let replica {
                return connection.query("SELECT count(*) FROM quota_holds WHERE replica = \(replica)", logger: logger)
            }
            return connection.query("SELECT count(*) FROM quota_holds", logger: logger)
        }.flatMapThrowing { result in
            guard let row = result.rows.first else { return 0 }
            return try row.decode(Int.self)
        }
    }
}

/// One budget counter's sums (pico-dollars and tokens).
public struct SharedQuotaCounter: Sendable, Hashable {
    public var spent: Int128
    public var reserved: Int128
    public var spentTokens: Int128
    public var reservedTokens: Int128

    public init(spent: Int128, reserved: Int128, spentTokens: Int128, reservedTokens: Int128) {
        self.spent = spent
        self.reserved = reserved
        self.spentTokens = spentTokens
        self.reservedTokens = reservedTokens
    }
}
