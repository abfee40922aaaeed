import CSQLite
import Metering

/// The rollup cells' search counts (schema v12), kept right when a build without them wrote.
///
/// This build's writer adds a call's searches to its cells and moves `meta.search_rollups_through`
/// with `rollups_through` (`PendingRollups`). An older build rolls calls up without their
/// searches and moves only `rollups_through`: one still serving after a newer CLI migrated the
/// ledger, or one rolled back to (set back to v11), which later takes v12 again. Then the cells of
/// the calls between the two marks lack searches, and they are recounted: by this build's writer
/// before each flush, and by every open (`Schema.migrate`). A recount zeroes the search counts of
/// the UTC days those calls' searches fall in and adds back the searches of every call the cells
/// hold in those days. The cells before the prune mark keep what they hold: their calls are gone.
/// Migration v12 itself adds the columns and the mark at 0, so the first recount counts the whole
/// ledger.
enum SearchRollups {
    static let markName = "search_rollups_through"
    /// The schema version that gives the cells their search counts.
    static let schemaVersion = 12

    /// Migration v12: the columns (unless a ledger set back to v11 kept them) and the mark.
    static func addCountColumnsAndMark(_ connection: SQLiteConnection) throws {
        for level in RollupLevel.allCases {
            for span in RollupSpan.allCases {
                try Schema.Migration.addColumns(["web_searches INTEGER NOT NULL DEFAULT 0",
                                                 "file_searches INTEGER NOT NULL DEFAULT 0"],
                                                to: level.table(span), on: connection)
            }
        }
        try connection.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('\(markName)', 0)")
    }

    /// At an open: recounts, if the counts lag, in a transaction of its own. Takes the write lock
    /// only then; one it cannot take (another process writing for longer than the busy timeout,
    /// a read-only file) leaves the recount to the next open or the writer's next flush: a report
    /// must not fail for it.
    static func catchUp(_ connection: SQLiteConnection) throws {
        guard try lag(on: connection) != nil else { return }
        do {
            try connection.execute("BEGIN IMMEDIATE")
        } catch where mayWait(error) {
            return
        }
        do {
            try recountIfLagging(on: connection)
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            // A read-only file may let the transaction begin and refuse its first write.
            if mayWait(error) { return }
            throw error
        }
    }

    /// A failure that leaves the recount to a later open: the lock held elsewhere, or no writing.
    private static func mayWait(_ error: any Error) -> Bool {
        guard let error = error as? LedgerError else { return false }
        return error.isBusy || error.isReadOnly
    }

    /// Recounts the searches of the cells whose calls an older build rolled up, if any, inside
    /// the caller's write transaction.
    static func recountIfLagging(on connection: SQLiteConnection) throws {
        if let (mark, through) = try lag(on: connection) { try recount(after: mark, through: through, on: connection) }
    }

    /// The two marks when the search counts lag behind the cells (one statement: a flush
    /// committing between two reads would show a lag that is not there).
    private static func lag(on connection: SQLiteConnection) throws -> (mark: Int64, through: Int64)? {
        let s = try connection.prepare("""
            SELECT (SELECT value FROM meta WHERE name = '\(markName)'),
                   (SELECT value FROM meta WHERE name = '\(PendingRollups.markName)')
            """)
        defer { s.finalize() }
        guard try s.step(), let mark = s.optionalInt64(at: 0), let through = s.optionalInt64(at: 1),
              mark < through else { return nil }
        return (mark, through)
    }

    private static func recount(after mark: Int64, through: Int64, on connection: SQLiteConnection) throws {
        let prunedBefore = try LedgerPrune.prunedBefore(on: connection)
        let day = RollupSpan.day
        var runs: [ClosedRange<Int64>] = []
        if mark == 0 {
            // The first catch-up: every day from the prune mark on.
            let s = try connection.prepare(
                "SELECT MIN(started_at), MAX(started_at) FROM calls WHERE rowid <= ?1 AND started_at >= ?2")
            defer { s.finalize() }
            s.bind(through, at: 1)
            s.bind(prunedBefore, at: 2)
            if try s.step(), let first = s.optionalInt64(at: 0), let last = s.optionalInt64(at: 1) {
                runs = [day.number(of: first)...day.number(of: last)]
            }
        } else {
            // The days of the searches the lagging calls made (an older build's calls since the mark).
            let s = try connection.prepare("""
                SELECT started_at FROM calls
                WHERE rowid > ?1 AND rowid <= ?2 AND started_at >= ?3 AND (web_searches > 0 OR file_searches > 0)
                """)
            defer { s.finalize() }
            s.bind(mark, at: 1)
            s.bind(through, at: 2)
            s.bind(prunedBefore, at: 3)
            var found = Set<Int64>()
            while try s.step() { found.insert(day.number(of: s.int64(at: 0))) }
            runs = Self.runs(of: found.sorted())
        }
        let counts = try SearchCounts(connection: connection)
        defer { counts.finalize() }
        for run in runs {
            try counts.zero(days: run)
            try counts.add(days: run, through: through)
        }
        try connection.execute("UPDATE meta SET value = \(through) WHERE name = '\(markName)'")
    }

    /// Runs of consecutive days, from sorted days.
    private static func runs(of days: [Int64]) -> [ClosedRange<Int64>] {
        var runs: [ClosedRange<Int64>] = []
        for day in days {
            if let last = runs.last, last.upperBound + 1 == day {
                runs[runs.count - 1] = last.lowerBound...day
            } else {
                runs.append(day...day)
            }
        }
        return runs
    }
}

/// The search counts of the cells of whole UTC days, set from the calls.
private final class SearchCounts {
    private let connection: SQLiteConnection
    /// Key ids by key, read (not made: a writer's `RollupStore` in the same transaction keeps
    /// its own; every call the cells hold has its keys).
    private let ids: [RollupLevel: [RollupKey: Int64]]
    /// By `CellTable.ordinal`.
    private var additions: [Statement] = []

    init(connection: SQLiteConnection) throws {
        self.connection = connection
        var ids: [RollupLevel: [RollupKey: Int64]] = [:]
        for level in RollupLevel.allCases {
            ids[level] = try RollupStore.ids(level, on: connection)
        }
        self.ids = ids
        for table in Self.tables {
            additions.append(try connection.prepare("""
                UPDATE \(table.level.table(table.span))
                SET web_searches = web_searches + ?1, file_searches = file_searches + ?2
                WHERE \(table.span.column) = ?3 AND key = ?4
                """))
        }
    }

    private static let tables = RollupLevel.allCases.flatMap { level in
        RollupSpan.allCases.map { CellTable(level: level, span: $0) }
    }.sorted { $0.ordinal < $1.ordinal }

    func finalize() {
        for s in additions { s.finalize() }
    }

    func zero(days: ClosedRange<Int64>) throws {
        for table in Self.tables {
            let per: Int64 = table.span == .hour ? 24 : 1
            try connection.execute("""
                UPDATE \(table.level.table(table.span)) SET web_searches = 0, file_searches = 0
                WHERE \(table.span.column) BETWEEN \(days.lowerBound * per) AND \(days.upperBound * per + per - 1)
                  AND (web_searches <> 0 OR file_searches <> 0)
                """)
        }
    }

    /// Adds the searches of the calls of `days` the cells hold (rowid up to `through`), a batch
    /// of cells at a time.
    func add(days: ClosedRange<Int64>, through: Int64) throws {
        let s = try connection.prepare("""
            SELECT \(RollupFacts.callColumns()) FROM calls
            WHERE started_at >= ?1 AND started_at <= ?2 AND rowid <= ?3 AND (web_searches > 0 OR file_searches > 0)
            """)
        defer { s.finalize() }
        // The days' first and last µs, clamped: a row's start fits 64 bits, its day's end may not.
        let (first, firstOverflow) = days.lowerBound.multipliedReportingOverflow(by: UnixTime.microsPerDay)
        let (end, endOverflow) = (days.upperBound + 1).multipliedReportingOverflow(by: UnixTime.microsPerDay)
        s.bind(firstOverflow ? Int64.min : first, at: 1)
        s.bind(endOverflow ? Int64.max : end - 1, at: 2)
        s.bind(through, at: 3)
        var sums: [CellAddress: SearchCalls] = [:]
        func flush() throws {
            for (address, sum) in sums {
                let addition = additions[address.table.ordinal]
                addition.bind(sum.web, at: 1)
                addition.bind(sum.file, at: 2)
                addition.bind(address.number, at: 3)
                addition.bind(address.key, at: 4)
                try addition.run()
            }
            sums.removeAll(keepingCapacity: true)
        }
        while try s.step() {
            let (key, facts) = RollupFacts.call(s)
            for level in RollupLevel.allCases {
                guard let id = ids[level]?[level.key(key)] else { continue }
                for span in RollupSpan.allCases {
                    let number = span.number(of: facts.startedAt)
                    let address = CellAddress(level: level, span: span, number: number, key: id)
                    sums[address, default: SearchCalls()].web += facts.webSearches
                    sums[address, default: SearchCalls()].file += facts.fileSearches
                }
            }
            if sums.count >= RollupBackfill.flushCells { try flush() }
        }
        try flush()
    }
}
