import Ledger
import PostgresNIO

extension PostgresSession {
    /// Rows fetched per round trip by `forEachCall`.
    static let callPageSize = 5_000

    /// Visits the rows of `table` (`calls`, or `calls_retry_context`, which has its columns) that
    /// started in `[since, until)` in start order (ties in append order), a page at a time.
    /// Inside the caller's transaction: in a REPEATABLE READ one, every page sees one snapshot.
    func forEachCall(in table: String = "calls", since: Int64, until: Int64, _ body: (LedgerEntry) throws -> Void) throws {
        var after: (startedAt: Int64, seq: Int64) = (since, Int64.min)
        while true {
            let rows = try query("""
                SELECT \(unescaped: PostgresCallRow.selectList), seq FROM \(unescaped: table)
                WHERE started_at >= \(since) AND started_at < \(until) AND (started_at, seq) > (\(after.startedAt), \(after.seq))
                ORDER BY started_at, seq LIMIT \(Int64(Self.callPageSize))
                """, context: "read \(table)")
            for row in rows { try body(try PostgresCallRow.decode(row)) }
            guard rows.count == Self.callPageSize, let last = rows.last?.makeRandomAccess() else { return }
            // Only the page's last row says where the next page starts.
            after = (try last.value(PostgresCallRow.startedAtColumn), try last.value(PostgresCallRow.columns.count))
        }
    }

    /// Runs `body` in a read-only REPEATABLE READ transaction: every query sees one snapshot.
    func inSnapshot<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        defer { try? execute("COMMIT") }
        return try body()
    }
}
