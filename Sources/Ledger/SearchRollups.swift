import Metering

/// The rollup cells' search counts (schema v12), kept right when a build without them wrote.
///
/// This build's writer adds a call's searches to its cells and moves `meta.search_rollups_through`
/// with `rollups_through` (`PendingRollups`). An older build rolls calls up without their
/// searches and moves only `rollups_through`: one still serving after a newer CLI migrated the
/// ledger, or one rolled back to (set back to v11), which later takes v12 again. Then the cells of
/// the calls between the two marks lack searches, and `catchUp` (run by every open, see
/// `Schema.migrate`) recounts them: it zeroes the search counts of the UTC days those calls'
/// searches fall in and adds back the searches of every call the cells hold in those days. The
/// cells before the prune mark keep what they hold: their calls are gone. Migration v12 itself
/// adds the columns and the mark at 0, so the first catch-up counts the whole ledger.
enum SearchRollups {
    static let markName = "search_rollups_through"

    /// Migration v12: the columns (unless a ledger set back to v11 kept them) and the mark.
    static func addColumns(_ connection: SQLiteConnection) throws {
        for level in RollupLevel.allCases {
            for span in RollupSpan.allCases {
                try Schema.Migration.addColumns(["web_searches INTEGER NOT NULL DEFAULT 0",
                                                 "file_searches INTEGER NOT NULL DEFAULT 0"],
                                                to: level.table(span), on: connection)
            }
        }
        try connection.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('\(markName)', 0)")
    }

    /// Recounts the searches of the cells whose calls an older build rolled up, if any. Takes the
    /// write lock only when there is something to do.
    static func catchUp(_ connection: SQLiteConnection) throws {
        guard try lag(on: connection) != nil else { return }
        try connection.execute("BEGIN IMMEDIATE")
        do {
            if let (mark, through) = try lag(on: connection) { try recount(after: mark, through: through, on: connection) }
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }

    /// The two marks when the search counts lag behind the cells.
    private static func lag(on connection: SQLiteConnection) throws -> (mark: Int64, through: Int64)? {
        guard let mark = try connection.scalarInt("SELECT value FROM meta WHERE name = '\(markName)'") else { return nil }
        let through = try PendingRollups.mark(on: connection)
        return mark < through ? (mark, through) : nil
    }

    private static func recount(after mark: Int64, through: Int64, on connection: SQLiteConnection) throws {
        let prunedBefore = try LedgerPrune.prunedBefore(on: connection)
        let day = RollupSpan.day
        var days: [Int64] = []
        if mark == 0 {
            // The first catch-up: every day from the prune mark on.
            let s = try connection.prepare("SELECT MIN(started_at), MAX(started_at) FROM calls WHERE rowid <= ?1 AND started_at >= ?2")
            defer { s.finalize() }
            s.bind(through, at: 1)
            s.bind(prunedBefore, at: 2)
            if try s.step(), let first = s.optionalInt64(at: 0), let last = s.optionalInt64(at: 1) {
                days = Array(day.number(of: first)...day.number(of: last))
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
            days = found.sorted()
        }
        let counts = try SearchCounts(connection: connection)
        defer { counts.finalize() }
        for run in runs(of: days) {
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
    private let store: RollupStore
    /// By `CellTable.ordinal`.
    private var additions: [Statement] = []

    init(connection: SQLiteConnection) throws {
        self.connection = connection
        store = try RollupStore(connection: connection)
        for table in Self.tables {
            additions.append(try connection.prepare("""
                UPDATE \(table.level.table(table.span)) SET web_searches = web_searches + ?1, file_searches = file_searches + ?2
                WHERE \(table.span.column) = ?3 AND key = ?4
                """))
        }
    }

    private static let tables = RollupLevel.allCases.flatMap { level in
        RollupSpan.allCases.map { CellTable(level: level, span: $0) }
    }.sorted { $0.ordinal < $1.ordinal }

    func finalize() {
        store.finalize()
        for s in additions { s.finalize() }
    }

    func zero(days: ClosedRange<Int64>) throws {
        for table in Self.tables {
            let per: Int64 = table.span == .hour ? 24 : 1
            try connection.execute("""
                UPDATE \(table.level.table(table.span)) SET web_searches = 0, file_searches = 0
                WHERE \(table.span.column) >= \(days.lowerBound * per) AND \(table.span.column) < \((days.upperBound + 1) * per)
                  AND (web_searches <> 0 OR file_searches <> 0)
                """)
        }
    }

    /// Adds the searches of the calls of `days` the cells hold (rowid up to `through`), a batch
    /// of cells at a time.
    func add(days: ClosedRange<Int64>, through: Int64) throws {
        let s = try connection.prepare("""
            SELECT \(RollupFacts.callColumns()) FROM calls
            WHERE started_at >= ?1 AND started_at < ?2 AND rowid <= ?3 AND (web_searches > 0 OR file_searches > 0)
            """)
        defer { s.finalize() }
        s.bind(days.lowerBound * UnixTime.microsPerDay, at: 1)
        s.bind((days.upperBound + 1) * UnixTime.microsPerDay, at: 2)
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
            let ids = try store.ids(of: key)
            for level in RollupLevel.allCases {
                for span in RollupSpan.allCases {
                    let address = CellAddress(level: level, span: span, number: span.number(of: facts.startedAt), key: ids[level])
                    sums[address, default: SearchCalls()].web += facts.webSearches
                    sums[address, default: SearchCalls()].file += facts.fileSearches
                }
            }
            if sums.count >= RollupBackfill.flushCells { try flush() }
        }
        try flush()
    }
}
