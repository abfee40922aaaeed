/// Migration v5's backfill: retry flags and rollup cells for the calls already in a ledger, by
/// the same definitions the writer applies (see `RetryTracker`, `RollupCell`).
enum RollupBackfill {
    /// Cells held in memory before they are merged into the tables.
    static let flushCells = 50_000

    /// Migration v5: the detailed level only (the payer level's tables come with v6, which
    /// derives them from these cells: `PayerRollupBackfill`).
    static func detailed(_ connection: SQLiteConnection) throws { try run(connection, levels: [.detailed]) }

    /// Rebuilds the rollups of `levels` from the calls (into empty tables).
    static func run(_ connection: SQLiteConnection, levels: [RollupLevel] = RollupLevel.allCases) throws {
        let store = try RollupStore(connection: connection, levels: levels)
        defer { store.finalize() }
        // In (started_at, id) order the latest earlier call of a fingerprint is the one before.
        let s = try connection.prepare("""
            SELECT rowid, started_at, user, request_hash, team, COALESCE(model_served, model_requested),
                   provider, plan, key_id, outcome, input_tokens, cached_input_tokens, cache_write_tokens,
                   output_tokens, reasoning_tokens, cost_pd, latency_us, ttft_us
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
            let startedAt = s.int64(at: 1)
            var retry = false
            if let user = s.optionalString(at: 2), let hash = s.optionalInt64(at: 3) {
                let fingerprint = Fingerprint(user: user, hash: hash)
                if let last = lastStart[fingerprint], startedAt - last <= ReportQuery.retryWindowMicros {
                    retry = true
                    retryRows.append(s.int64(at: 0))
                }
                lastStart[fingerprint] = startedAt
            }
            let key = RollupKey(user: s.optionalString(at: 2), team: s.optionalString(at: 4),
                                model: s.optionalString(at: 5), provider: s.optionalString(at: 6),
                                plan: s.optionalString(at: 7), keyId: s.optionalString(at: 8))
            let facts = RollupFacts(startedAt: startedAt, outcome: s.string(at: 9), inputTokens: s.int(at: 10),
                                    cachedInputTokens: s.int(at: 11), cacheWriteTokens: s.int(at: 12),
                                    outputTokens: s.int(at: 13), reasoningTokens: s.int(at: 14),
                                    cost: s.int64(at: 15), latency: s.int64(at: 16), ttft: s.optionalInt64(at: 17),
                                    retry: retry)
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
