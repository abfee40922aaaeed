/// Migration v5's backfill: retry flags and rollup cells for the calls already in a ledger, by
/// the same definitions the writer applies (see `RetryTracker`, `RollupCell`).
enum RollupBackfill {
    /// Cells held in memory before they are merged into the tables.
    static let flushCells = 50_000

    /// Migration v5: the detailed level only (the payer level's tables come with v6, which
    /// derives them from these cells: `PayerRollupBackfill`), without the search counts (which
    /// the calls have from v9 and v11, the cells from v12).
    static func detailed(_ connection: SQLiteConnection) throws {
        try run(connection, levels: [.detailed], searches: false)
    }

    /// Rebuilds the rollups of `levels` from the calls (into empty tables).
    static func run(_ connection: SQLiteConnection, levels: [RollupLevel] = RollupLevel.allCases,
                    searches: Bool = true) throws {
        let store = try RollupStore(connection: connection, levels: levels, searches: searches)
        defer { store.finalize() }
        // In (started_at, id) order the latest earlier call of a fingerprint is the one before.
        // The stored retry flags are read but replaced: they are what this computes.
        let s = try connection.prepare("""
            SELECT rowid, request_hash, \(RollupFacts.callColumns(searches: searches))
            FROM calls ORDER BY started_at, id
            """)
        struct Fingerprint: Hashable { var user: String; var hash: Int64 }
        var lastStart: [Fingerprint: Int64] = [:]
        var retryRows: [Int64] = []
        var cells: [CellAddress: RollupCellBuilder] = [:]
        var rows = 0
        func flush() throws {
            for (address, builder) in cells { try store.merge(builder.built(), into: address) }
            cells.removeAll(keepingCapacity: true)
        }
        while try s.step() {
            let call = RollupFacts.call(s, from: 2)
            let key = call.key
            var facts = call.facts
            let startedAt = facts.startedAt
            facts.retry = false
            if let user = key.user, let hash = s.optionalInt64(at: 1) {
                let fingerprint = Fingerprint(user: user, hash: hash)
                if let last = lastStart[fingerprint], startedAt - last <= ReportQuery.retryWindowMicros {
                    facts.retry = true
                    retryRows.append(s.int64(at: 0))
                }
                lastStart[fingerprint] = startedAt
            }
            for level in store.levels {
                let id = try store.id(of: key, at: level)
                for span in RollupSpan.allCases {
                    cells[CellAddress(level: level, span: span, number: span.number(of: startedAt), key: id),
                          default: RollupCellBuilder()].add(facts, quarter: span.quarter(of: startedAt))
                }
            }
            rows += 1
            if cells.count >= flushCells { try flush() }
            if rows % 100_000 == 0 {
                lastStart = lastStart.filter { startedAt - $0.value <= ReportQuery.retryWindowMicros }
            }
        }
        try flush()
        let mark = try connection.prepare("UPDATE calls SET retry = 1 WHERE rowid = ?1")
        for rowid in retryRows {
            mark.bind(rowid, at: 1)
            try mark.run()
        }
    }
}
