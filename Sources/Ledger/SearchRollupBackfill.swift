import Metering

/// Migration v12's backfill: the search counts of the cells, from the calls the cells hold.
///
/// Each cell's counts are set (not added) to its calls' sums, so a ledger set back to v11 for a
/// rollback, whose older build then added calls to the cells without their searches, is right
/// again when it takes v12 a second time. Only calls from the prune mark on count: the cells
/// before it keep what they hold (the calls of a pruned cell are gone, but for the one row a
/// prune keeps, which alone would undercount its cell).
enum SearchRollupBackfill {
    static let columns = ["web_searches INTEGER NOT NULL DEFAULT 0", "file_searches INTEGER NOT NULL DEFAULT 0"]

    static func run(_ connection: SQLiteConnection) throws {
        for level in RollupLevel.allCases {
            for span in RollupSpan.allCases {
                let table = level.table(span)
                // A ledger set back to v11 kept the columns.
                let present = try connection.scalarInt(
                    "SELECT COUNT(*) FROM pragma_table_info('\(table)') WHERE name = 'web_searches'") ?? 0
                guard present == 0 else { continue }
                try connection.execute(columns.map { "ALTER TABLE \(table) ADD COLUMN \($0);" }.joined(separator: "\n"))
            }
        }
        // Key ids by key, read rather than made: every call the cells hold has its keys.
        var ids: [RollupLevel: [RollupKey: Int64]] = [:]
        for level in RollupLevel.allCases {
            ids[level] = try RollupStore.keys(level, on: connection).reduce(into: [:]) { $0[$1.value] = $1.key }
        }
        let s = try connection.prepare("""
            SELECT started_at, user, team, COALESCE(model_served, model_requested), provider, plan, key_id,
                   web_searches, file_searches
            FROM calls WHERE rowid <= ?1 AND started_at >= ?2 AND (web_searches > 0 OR file_searches > 0)
            """)
        defer { s.finalize() }
        s.bind(try PendingRollups.mark(on: connection), at: 1)
        s.bind(try LedgerPrune.prunedBefore(on: connection), at: 2)
        var sums: [CellAddress: SearchCalls] = [:]
        while try s.step() {
            let startedAt = s.int64(at: 0)
            let key = RollupKey(user: s.optionalString(at: 1), team: s.optionalString(at: 2),
                                model: s.optionalString(at: 3), provider: s.optionalString(at: 4),
                                plan: s.optionalString(at: 5), keyId: s.optionalString(at: 6))
            for level in RollupLevel.allCases {
                guard let id = ids[level]?[level.key(key)] else {
                    throw LedgerError.invalidRow("a call rolled up at \(startedAt) has no \(level.name) rollup key")
                }
                for span in RollupSpan.allCases {
                    let address = CellAddress(level: level, span: span, number: span.number(of: startedAt), key: id)
                    sums[address, default: SearchCalls()].web += s.int(at: 7)
                    sums[address, default: SearchCalls()].file += s.int(at: 8)
                }
            }
        }
        var updates: [CellTable: Statement] = [:]
        defer { for update in updates.values { update.finalize() } }
        for (address, sum) in sums {
            let table = address.table
            let update = try updates[table] ?? connection.prepare("""
                UPDATE \(table.level.table(table.span)) SET web_searches = ?1, file_searches = ?2
                WHERE \(table.span.column) = ?3 AND key = ?4
                """)
            updates[table] = update
            update.bind(sum.web, at: 1)
            update.bind(sum.file, at: 2)
            update.bind(address.number, at: 3)
            update.bind(address.key, at: 4)
            try update.run()
        }
    }
}
