import Foundation
import Ledger
import Metering
import PostgresNIO

/// Read access to a PostgreSQL ledger on its own connection. Thread-safe: calls are serialised
/// (like SQLite's `LedgerReader`, a `forEachEntry` body must not call back into the reader).
public final class PostgresLedgerReader: LedgerSource, @unchecked Sendable {
    private let lock = NSLock()
    private let session: PostgresSession
    /// Serialises reports; guards `lastCopy`.
    private let copyLock = NSLock()
    private var lastCopy: ReportCopy?
    private let reusesReportCopies: Bool
    /// Connects and brings the schema up to date (a reader may be the first to open the ledger).
    /// `readOnly` then makes every transaction of this connection read-only (for readers that
    /// serve untrusted requests). `reusesReportCopies`: see `report`; for short-lived readers
    /// (one command), as the copy does not see calls recorded after it was made.
    public init(location: PostgresLocation, readOnly: Bool = false, reusesReportCopies: Bool = false) throws {
        self.reusesReportCopies = reusesReportCopies
        session = try PostgresSession(location)
        do {
            try PostgresSchema.prepare(session)
            if readOnly { try session.keep("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY") }
        } catch {
            session.close()
            throw error
        }
    }

    public func close() {
        copyLock.withLock {
            lastCopy?.close()
            lastCopy = nil
        }
        locked { session.close() }
    }

    /// Visits the calls that started in `[since, until)` in start order (ties in append order),
    /// a page at a time, all pages from one snapshot (a REPEATABLE READ transaction).
    public func forEachEntry(since: Int64, until: Int64, _ body: (LedgerEntry) throws -> Void) throws {
        try locked { try session.inSnapshot { try session.forEachCall(since: since, until: until, body) } }
    }

    /// The first call recorded with this `x-request-id`.
    public func entry(requestId: String) throws -> LedgerEntry? {
        try locked {
            try session.query("""
                SELECT \(unescaped: PostgresCallRow.selectList) FROM calls WHERE request_id = \(requestId)
                ORDER BY seq LIMIT 1
                """, context: "find call by request id").first.map(PostgresCallRow.decode)
        }
    }

    public func entry(id: String) throws -> LedgerEntry? {
        try locked {
            try session.query("""
                SELECT \(unescaped: PostgresCallRow.selectList) FROM calls WHERE id = \(id) ORDER BY seq LIMIT 1
                """, context: "find call by id").first.map(PostgresCallRow.decode)
        }
    }

    public func count() throws -> Int {
        try locked { Int(try session.scalar("SELECT COUNT(*) FROM calls", as: Int64.self, context: "count calls") ?? 0) }
    }

    /// The report engine's answer, identical to SQLite's because it IS SQLite's engine: the
    /// period's calls, plus those of the retry window before it, are copied into a temporary
    /// SQLite ledger (`ReportCopy`) and `LedgerReader.report` runs on it. The file is deleted after.
    /// Before the prune mark, the copy holds the pruned calls' cells instead (`copyCalls`).
    ///
    /// Cost: O(rows in the period), in time (about what writing them to a local SQLite ledger
    /// costs) and temporary disk (a few hundred bytes per row); a SQLite ledger answers from its
    /// rollups instead. Fine for days and weeks at moderate volume; month-long reports over
    /// millions of calls take tens of seconds. With `reusesReportCopies`, a copy is kept until
    /// the next report that it cannot answer, so a command that asks several reports of one
    /// period (a report and its summary) copies it once.
    public func report(_ query: ReportQuery) throws -> Report {
        copyLock.lock()
        defer { copyLock.unlock() }
        if let copy = lastCopy, copy.answers(query) { return try copy.report(query) }
        lastCopy?.close()
        lastCopy = nil
        let since = ReportCopy.start(of: query)
        let copy = try locked { try session.inSnapshot { try copyCalls(since: since, until: query.until) } }
        defer { if reusesReportCopies { lastCopy = copy } else { copy.close() } }
        return try copy.report(query)
    }

    /// Copies the calls of `[since, until)`, from the caller's snapshot. Where that reaches before
    /// the prune mark, the copy also gets the stored cells there and the retry window's calls
    /// before the mark, and becomes what a SQLite ledger pruned at the mark is (`RollupTransfer.adopt`).
    private func copyCalls(since: Int64, until: Int64) throws -> ReportCopy {
        let mark = try PostgresLedgerPrune.mark(on: session)
        var pruned: ReportCopy.Pruned?
        if mark > 0 && since < mark {
            pruned = ReportCopy.Pruned(mark: mark, cells: try PrunedRollupCells.load(since: since, until: min(until, mark),
                                                                                     on: session))
        }
        return try ReportCopy(since: since, until: until, pruned: pruned) { body in
            if pruned != nil {
                try session.forEachCall(in: "calls_retry_context", since: mark - ReportQuery.retryWindowMicros, until: mark, body)
            }
            try session.forEachCall(since: since, until: until, body)
        }
    }

    /// Spend per (user, team) of the calls that started at or after `since`, as SQLite's
    /// (`LedgerReader.spend(since:)`, read from its rollup cells): every call's cost and tokens
    /// (a refusal's are none), payers with only refusals left out.
    public func spend(since: Int64) throws -> [PayerSpend] {
        try locked {
            try session.query("""
                SELECT "user", team, SUM(cost_pd)::text,
                       SUM(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens)::int8
                FROM calls WHERE started_at >= \(since)
                GROUP BY "user", team HAVING bool_or(NOT starts_with(outcome, 'refused_')) ORDER BY "user", team
                """, context: "sum spend").map { row in
                let r = row.makeRandomAccess()
                return PayerSpend(user: try r.value(0), team: try r.value(1), cost: try Self.total(r, 2),
                                  tokens: Int(try r.value(3, as: Int64.self)))
            }
        }
    }

    public func spendPerMinute(since: Int64) throws -> [(minute: Int64, cost: Money.Total)] {
        try locked {
            try session.query("""
                SELECT started_at / 60000000, SUM(cost_pd)::text FROM calls
                WHERE started_at >= \(since) AND NOT starts_with(outcome, 'refused_')
                GROUP BY 1 ORDER BY 1
                """, context: "sum spend per minute").map { row in
                let r = row.makeRandomAccess()
                return (try r.value(0, as: Int64.self) * 60_000_000, try Self.total(r, 1))
            }
        }
    }

    public func activityPerMinute(since: Int64, until: Int64) throws -> [MinuteActivity] {
        let errorOutcomes = Outcome.allCases.filter(\.isError).map { "'\($0.rawValue)'" }.joined(separator: ",")
        let refused = "starts_with(outcome, 'refused_')"
        return try locked {
            try session.query("""
                SELECT started_at / 60000000, COUNT(*), COUNT(*) FILTER (WHERE \(unescaped: refused)),
                       COUNT(*) FILTER (WHERE outcome IN (\(unescaped: errorOutcomes))),
                       COUNT(*) FILTER (WHERE NOT \(unescaped: refused)),
                       COALESCE(SUM(latency_us) FILTER (WHERE NOT \(unescaped: refused)), 0)::int8
                FROM calls WHERE started_at >= \(since) AND started_at < \(until)
                GROUP BY 1 ORDER BY 1
                """, context: "count activity per minute").map { row in
                let r = row.makeRandomAccess()
                return MinuteActivity(minute: try r.value(0, as: Int64.self) * 60_000_000,
                                      requests: Int(try r.value(1, as: Int64.self)),
                                      refused: Int(try r.value(2, as: Int64.self)),
                                      errors: Int(try r.value(3, as: Int64.self)),
                                      timedRequests: Int(try r.value(4, as: Int64.self)),
                                      latencySumMicros: try r.value(5))
            }
        }
    }

    /// A NUMERIC sum read as text (an int8 sum can pass Int64), exact as Int128.
    private static func total(_ row: PostgresRandomAccessRow, _ column: Int) throws -> Money.Total {
        let text: String = try row.value(column)
        guard let value = Int128(text) else { throw LedgerError.invalidRow("sum '\(text)' is not an integer") }
        return Money.Total(picodollars: value)
    }

    /// Runs a query of another file of this module on the serialised session.
    func withSession<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        try locked { try body(session) }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
