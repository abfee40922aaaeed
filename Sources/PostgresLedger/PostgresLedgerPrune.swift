import Ledger
import PostgresNIO

/// `ledger prune` for a PostgreSQL ledger: deletes raw calls before a date and keeps their
/// rollup cells, so reports over whole UTC hours keep their figures (as `LedgerPrune` does for
/// SQLite, with the same date rule and the same cells).
///
/// The ledger keeps no rollups of its own, so the cells of the calls between the previous mark
/// and the date are computed by SQLite's writer in a temporary ledger (`ReportCopy`) and stored
/// in `rollup_cells_pruned` by key values (`RollupTransfer`). Reports copy them back (see
/// `PostgresLedgerReader.report`). The fingerprinted calls of the retry window before the date
/// move to `calls_retry_context`: they decide whether the first calls after it are retries.
///
/// One transaction stores the cells, replaces the retry context, drops the monthly partitions
/// wholly before the date, deletes the other calls before it and records the mark
/// (`tokenctl_meta.pruned_before`). It locks `calls` against writes first and checks that the
/// calls before the date are those the cells were computed from; a call recorded meanwhile
/// with an earlier start (in flight for over a day) makes it refuse, to be run again.
/// Concurrent prunes wait on an advisory lock.
public enum PostgresLedgerPrune {
    static let markName = "pruned_before"
    /// The prune's advisory lock (the schema lock's key plus one).
    static let lockKey = PostgresSchema.lockKey + 1

    public static func prune(location: PostgresLocation, before: Int64,
                             now: Int64 = UnixTime.nowMicros()) throws -> LedgerPrune.Outcome {
        try LedgerPrune.checkDate(before, now: now)
        let session = try PostgresSession(location)
        defer { session.close() }
        try PostgresSchema.prepare(session)
        try session.query("SELECT pg_advisory_lock(\(lockKey))", context: "take the prune lock")
        defer { _ = try? session.query("SELECT pg_advisory_unlock(\(lockKey))", context: "release the prune lock") }
        let mark = try self.mark(on: session)
        guard before > mark else { return LedgerPrune.Outcome(deleted: 0, rolledUp: 0) }
        let window = ReportQuery.retryWindowMicros
        var copied = 0
        let copy = try session.inSnapshot {
            try ReportCopy(since: mark > 0 ? mark - window : .min, until: before) { body in
                if mark > 0 { try session.forEachCall(in: "calls_retry_context", since: mark - window, until: mark, body) }
                try session.forEachCall(since: .min, until: before) { entry in
                    copied += 1
                    try body(entry)
                }
            }
        }
        defer { copy.close() }
        let cells = try RollupTransfer.cells(ofLedgerAt: copy.path, since: mark > 0 ? mark : .min, until: before)
        return try session.transaction {
            try session.execute("LOCK TABLE calls IN SHARE MODE")
            let present = try session.scalar("SELECT COUNT(*) FROM calls WHERE started_at < \(before)",
                                             as: Int64.self, context: "count calls to prune") ?? 0
            guard present == copied else {
                throw LedgerPrune.Refusal(description: """
                    \(Int(present) - copied) calls that started before the prune date were recorded while it ran; \
                    nothing was deleted: run it again
                    """)
            }
            try PrunedRollupCells.store(cells, on: session)
            try session.execute("DELETE FROM calls_retry_context")
            try session.query("""
                INSERT INTO calls_retry_context (\(unescaped: PostgresCallRow.selectList), seq)
                SELECT \(unescaped: PostgresCallRow.selectList), seq FROM calls
                WHERE started_at >= \(before - window) AND started_at < \(before)
                  AND "user" IS NOT NULL AND request_hash IS NOT NULL
                """, context: "keep the retry window before the prune date")
            try dropPartitions(before: before, on: session)
            try session.query("DELETE FROM calls WHERE started_at < \(before)", context: "delete pruned calls")
            try session.query("""
                INSERT INTO tokenctl_meta (name, value) VALUES (\(markName), \(before))
                ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value
                """, context: "record the prune mark")
            return LedgerPrune.Outcome(deleted: copied, rolledUp: 0)
        }
    }

    /// Where raw calls start (0: never pruned).
    static func mark(on session: PostgresSession) throws -> Int64 {
        try session.scalar("SELECT value FROM tokenctl_meta WHERE name = \(markName)", as: Int64.self,
                           context: "read the prune mark") ?? 0
    }

    /// Drops the monthly partitions (`calls_YYYY_MM`) that end at or before `before`: cheaper
    /// than deleting their rows, and it returns their space at once.
    private static func dropPartitions(before: Int64, on session: PostgresSession) throws {
        let rows = try session.query("""
            SELECT c.relname FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'calls'::regclass
            """, context: "list call partitions")
        for row in rows {
            let name: String = try row.makeRandomAccess().value(0)
            guard let month = UTCMonth(partitionName: name), month.advanced(by: 1).startMicros <= before else { continue }
            try session.execute("DROP TABLE \(name)")
        }
    }
}

extension UTCMonth {
    /// The month of a partition named `calls_YYYY_MM`; nil for any other name.
    init?(partitionName name: String) {
        let parts = name.split(separator: "_")
        guard parts.count == 3, parts[0] == "calls", parts[1].count == 4, parts[2].count == 2,
              let year = Int(parts[1]), let month = Int(parts[2]), (1...12).contains(month) else { return nil }
        self.init(index: (year - 1970) * 12 + month - 1)
    }
}
