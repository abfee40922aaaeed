import Foundation

/// Read access to the ledger on its own connection; works on a live ledger while a server
/// (another process or a `LedgerWriter`) writes, thanks to WAL. Thread-safe: calls are serialised.
public final class LedgerReader: @unchecked Sendable {
    private let lock = NSLock()
    let connection: SQLiteConnection

    /// Opens an existing ledger (a missing file is an error, so a mistyped path does not silently
    /// report nothing), bringing an older schema up to date. `readOnly` then refuses any write on
    /// this connection (`PRAGMA query_only`): for readers that serve untrusted requests.
    public init(path: String, busyTimeoutMillis: Int32 = 5_000, readOnly: Bool = false) throws {
        connection = try SQLiteConnection(path: path, mode: .readWrite, busyTimeoutMillis: busyTimeoutMillis)
        try Schema.migrate(connection)
        if readOnly { try connection.execute("PRAGMA query_only = 1") }
    }

    public func close() {
        locked { connection.close() }
    }

    /// Visits the calls that started in `[since, until)` in start order, one row in memory at a time.
    public func forEachEntry(since: Int64, until: Int64, _ body: (LedgerEntry) throws -> Void) throws {
        try locked {
            let s = try connection.prepare("""
                SELECT \(CallRow.selectList) FROM calls
                WHERE started_at >= ?1 AND started_at < ?2 ORDER BY started_at, rowid
                """)
            s.bind(since, at: 1)
            s.bind(until, at: 2)
            while try s.step() { try body(try CallRow.decode(s)) }
        }
    }

    /// The first call recorded with this `x-request-id`.
    public func entry(requestId: String) throws -> LedgerEntry? {
        try single(Self.requestIdLookup, requestId)
    }

    /// Rows by request id (`?1`), first first. One the gateway made names its row
    /// (`LedgerEntry.madeRequestIDPrefix`), the others are in `calls_client_request_id`: each
    /// branch is an index lookup (the second repeats that index's condition so SQLite uses it).
    static let requestIdLookup: String = {
        let made = LedgerEntry.madeRequestIDPrefix
        return """
            SELECT \(CallRow.selectList) FROM (
                SELECT rowid AS seq, * FROM calls WHERE id = substr(?1, \(made.utf8.count + 1)) AND request_id = ?1
                UNION ALL
                SELECT rowid AS seq, * FROM calls WHERE request_id = ?1 AND request_id <> '\(made)' || id
            ) ORDER BY seq LIMIT 1
            """
    }()

    /// The call with this id.
    public func entry(id: String) throws -> LedgerEntry? {
        try single("SELECT \(CallRow.selectList) FROM calls WHERE id = ?1", id)
    }

    /// Number of calls recorded in total.
    public func count() throws -> Int {
        try locked { Int(try connection.scalarInt("SELECT COUNT(*) FROM calls") ?? 0) }
    }

    /// Aggregates the calls that started in `[query.since, query.until)`, rows by cost descending.
    ///
    /// Reads the writer's hourly and daily rollups where they cover the period and raw calls for
    /// the ragged edges (see `ReportAggregation`). Money is exact (Int128, no bound beyond one
    /// call's Int64); percentiles are within `LatencyBuckets.relativeError` of nearest-rank.
    public func report(_ query: ReportQuery) throws -> Report {
        try locked {
            // One read transaction: every statement of the report sees the same snapshot.
            try connection.execute("BEGIN")
            defer { try? connection.execute("COMMIT") }
            return try ReportAggregation(query: query).run(on: connection)
        }
    }

    private func single(_ sql: String, _ key: String) throws -> LedgerEntry? {
        try locked {
            let s = try connection.prepare(sql)
            s.bind(key, at: 1)
            return try s.step() ? try CallRow.decode(s) : nil
        }
    }

    /// The UTC moment before which `ledger prune` deleted raw rows (0: never pruned); only the
    /// rollups hold those calls.
    public func prunedBefore() throws -> Int64 {
        try locked { try LedgerPrune.prunedBefore(on: connection) }
    }

    /// Runs a query of another file of this module on the serialised connection.
    func withConnection<T>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try locked { try body(connection) }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }
}
