import CSQLite
import Testing
@testable import Ledger
import LedgerTestSupport
import Metering

@Suite struct SchemaTests {
    private func tables(_ connection: SQLiteConnection) throws -> Set<String> {
        let s = try connection.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'index', 'trigger')")
        var names = Set<String>()
        while try s.step() { names.insert(s.string(at: 0)) }
        return names
    }

    /// SQLite's memory statistics take a global mutex on every allocation; they are off before
    /// any connection opens, so nothing is counted.
    @Test func sqliteKeepsNoMemoryStatistics() throws {
        let dir = try TemporaryDirectory()
        let connection = try SQLiteConnection(path: dir.path())
        try connection.execute("CREATE TABLE t (a TEXT); INSERT INTO t VALUES ('some text to allocate for')")
        #expect(sqlite3_memory_used() == 0, "\(sqlite3_memory_used()) bytes counted")
        connection.close()
    }

    @Test func migratesFromEmpty() throws {
        let dir = try TemporaryDirectory()
        let connection = try SQLiteConnection(path: dir.path())
        try Schema.migrate(connection)
        #expect(try Schema.version(of: connection) == Schema.latestVersion)
        let names = try tables(connection)
        for expected in ["calls", "api_keys", "meta", "calls_started_at", "calls_user_started_at",
                         "calls_client_request_id", "api_keys_stamp_insert", "api_keys_stamp_update"] {
            #expect(names.contains(expected), "missing \(expected)")
        }
        #expect(!names.contains("calls_request_id"), "v7 replaced it")
    }

    /// v7 indexes `request_id` only where a client sent it: an id the gateway made (`req_` and the
    /// row's id) is found through `id`. Every kind is found, by index, across the migration.
    @Test func findsRequestIdsMadeOrSentAcrossV7() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path()
        let made = LedgerEntry.madeRequestIDPrefix
        func entry(_ n: Int, id: String, requestId: String) -> LedgerEntry {
            var e = sampleEntry(n)
            e.id = id
            e.requestId = requestId
            return e
        }
        // Before v7 the gateway made ids unrelated to the row's: they stay in the index.
        let v6Made = entry(1, id: "0000000000000001aaaaaaaaaaaaaaaa", requestId: made + "0000000000000001bbbbbbbb")
        let v6Sent = entry(2, id: "0000000000000002aaaaaaaaaaaaaaaa", requestId: "client-2")
        do {
            let connection = try SQLiteConnection(path: path)
            try connection.configureForLedger()
            try Schema.migrate(connection, upTo: 6)
            let insert = try connection.prepare(CallRow.v7InsertSQL)
            for e in [v6Made, v6Sent] {
                CallRow.bind(e, to: insert)
                insert.bind(Int64(0), at: CallRow.retryParameter)
                try insert.run()
            }
            connection.close()
        }
        let madeNow = entry(3, id: "0000000000000003aaaaaaaaaaaaaaaa", requestId: made + "0000000000000003aaaaaaaaaaaaaaaa")
        let sentNow = entry(4, id: "0000000000000004aaaaaaaaaaaaaaaa", requestId: "client-4")
        // A client sending back an id the gateway made for another call: still "the first" is the original.
        let echoed = entry(5, id: "0000000000000005aaaaaaaaaaaaaaaa", requestId: madeNow.requestId)
        // A client id shaped like a made one that names no row.
        let lookalike = entry(6, id: "0000000000000006aaaaaaaaaaaaaaaa", requestId: made + "ffffffffffffffffffffffffffffffff")
        let writer = try LedgerWriter(path: path)
        #expect(appendAll([madeNow, sentNow, echoed, lookalike], to: writer).isEmpty)
        writer.close()

        let reader = try LedgerReader(path: path)
        for e in [v6Made, v6Sent, madeNow, sentNow, lookalike] {
            #expect(try reader.entry(requestId: e.requestId)?.id == e.id, "\(e.requestId)")
        }
        #expect(try reader.entry(requestId: made + "0000000000000009aaaaaaaaaaaaaaaa") == nil)
        #expect(try reader.entry(requestId: "client-9") == nil)
        #expect(try reader.entry(requestId: "") == nil)
        try reader.withConnection { connection in
            // Only the ids the gateway did not make as `req_` + id are in the index.
            #expect(try connection.scalarInt("""
                SELECT COUNT(*) FROM calls INDEXED BY calls_client_request_id WHERE request_id <> 'req_' || id
                """) == 5)
            let plan = try connection.prepare("EXPLAIN QUERY PLAN " + LedgerReader.requestIdLookup)
            var steps: [String] = []
            while try plan.step() { steps.append(plan.string(at: 3)) }
            #expect(steps.contains { $0.contains("USING INDEX sqlite_autoindex_calls_1 (id=?)") }, "\(steps)")
            #expect(steps.contains { $0.contains("USING INDEX calls_client_request_id") }, "\(steps)")
            #expect(!steps.contains { $0.hasPrefix("SCAN calls") }, "\(steps)")
        }
    }

    @Test func migratesFromV1KeepingRows() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path()
        do {
            let connection = try SQLiteConnection(path: path)
            try connection.configureForLedger()
            try Schema.migrate(connection, upTo: 1)
            #expect(try Schema.version(of: connection) == 1)
            #expect(try !tables(connection).contains("api_keys"))
            // A row as a v1 ledger held it (no later columns).
            try connection.execute("""
                INSERT INTO calls (id, request_id, started_at, ended_at, latency_us, dialect, route, stream,
                  status, outcome, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens,
                  reasoning_tokens, usage_source, cost_pd)
                VALUES ('call-1', 'req-1', \(day0), \(day0 + 1000), 1000, 'openai', 'chat.completions', 0,
                  200, 'ok', 10, 0, 0, 5, 0, 'provider', 4500000)
                """)
            connection.close()
        }
        let writer = try LedgerWriter(path: path)
        appendAll([sampleEntry(2)], to: writer)
        writer.close()
        let reader = try LedgerReader(path: path)
        #expect(try reader.entries(since: 0, until: .max).map(\.id) == ["call-1", "call-2"])
        #expect(try Schema.version(of: reader.connection) == Schema.latestVersion)
        let keys = try KeyStore(path: path)
        #expect(try keys.changeStamp() == 0)
        #expect(try keys.list().isEmpty)
    }

    @Test func reopeningIsIdempotent() throws {
        let dir = try TemporaryDirectory()
        for _ in 0..<3 {
            let connection = try SQLiteConnection(path: dir.path())
            try Schema.migrate(connection)
            try Schema.migrate(connection)
            #expect(try Schema.version(of: connection) == Schema.latestVersion)
        }
        let keys = try KeyStore(path: dir.path())
        try keys.insert(APIKeyRecord(id: "k1", secretHash: "h1", user: "u"))
        _ = try LedgerReader(path: dir.path())
        #expect(try keys.list().count == 1)
    }

    /// v8 to v11 only add columns: set back for a rollback, a later start adds them once
    /// more without a fault and keeps what was written in them.
    @Test func columnMigrationsCanBeSetBackAndAppliedAgain() throws {
        let dir = try TemporaryDirectory()
        var entry = sampleEntry(1, usage: Usage(inputTokens: 1, cacheWriteTokens: 2, cacheWrite1hTokens: 1, webSearches: 4))
        entry.price?.webSearch = Money(picodollars: 7)
        entry.usage.audioOutputTokens = 1
        entry.price?.audioOutput = Money(picodollars: 9)
        entry.usage.fileSearches = 2
        entry.price?.fileSearch = Money(picodollars: 11)
        let writer = try LedgerWriter(path: dir.path())
        appendAll([entry], to: writer)
        writer.close()
        for version in [10, 9, 8, 7] {
            let connection = try SQLiteConnection(path: dir.path())
            try connection.execute("PRAGMA user_version = \(version)")
            connection.close()
            let reader = try LedgerReader(path: dir.path())
            #expect(try Schema.version(of: reader.connection) == Schema.latestVersion)
            #expect(try reader.entry(id: entry.id) == entry)
        }
    }

    /// v12 gives the cells the searches of the calls they already hold (a v11 ledger's cells
    /// have none). An older build that rolls calls up without their searches, still serving after
    /// the migration or rolled back to (v11), leaves cells that the next open recounts.
    @Test func searchCountsOfCellsAnOlderBuildRolledUp() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path()
        let entries = autumnCalls(seed: 3, count: 1_000)
        #expect(entries.contains { $0.usage.webSearches > 0 } && entries.contains { $0.usage.fileSearches > 0 })
        try Self.openAt(path, version: 11).close()
        // 600 calls in the cells, 100 in the tail.
        try Self.writeAsOlderBuild(entries[..<600], at: path)
        try Self.writeAsOlderBuild(entries[600..<700], at: path, rollUp: false)
        try Self.expectSearchesCounted(entries[..<700], at: path, "a v11 ledger taking v12")
        // An older build still serving after a newer CLI migrated the ledger.
        try Self.writeAsOlderBuild(entries[700..<800], at: path)
        try Self.expectSearchesCounted(entries[..<800], at: path, "recounted after an older build wrote")
        // Rolled back to v11, then v12 again.
        try Self.openAt(path, version: 11).close()
        try Self.writeAsOlderBuild(entries[800..<900], at: path)
        try Self.expectSearchesCounted(entries[..<900], at: path, "v12 taken again after a rollback")
        // This build's writer adds the rest with their searches, and moves both marks.
        let writer = try LedgerWriter(path: path)
        #expect(appendAll(Array(entries[900...]), to: writer).isEmpty)
        writer.close()
        do {
            let connection = try SQLiteConnection(path: path)
            defer { connection.close() }
            #expect(try connection.scalarInt("SELECT value FROM meta WHERE name = 'search_rollups_through'")
                    == PendingRollups.mark(on: connection))
        }
        try Self.expectSearchesCounted(entries[...], at: path, "written since")
    }

    /// A writer of this build and one of an older build on the same ledger: this build's flush
    /// leaves the search counts' mark behind once the older one rolled calls up, for the next
    /// open to recount them.
    @Test func searchCountsWhenAnOlderWriterRollsUpBetweenFlushes() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path()
        let entries = autumnCalls(seed: 6, count: 600)
        let writer = try LedgerWriter(path: path, options: LedgerWriter.Options(rollupFlushRows: 1))
        #expect(appendAll(Array(entries[..<200]), to: writer).isEmpty)
        try Self.writeAsOlderBuild(entries[200..<400], at: path)
        #expect(appendAll(Array(entries[400...]), to: writer).isEmpty)
        writer.close()
        // Recounted by the writer's own flush, before any open.
        let connection = try SQLiteConnection(path: path)
        try Self.expectCellsHoldTheirCallsSearches(connection, "the writer's flush")
        connection.close()
        try Self.expectSearchesCounted(entries[...], at: path, "an older writer's calls recounted")
    }

    /// An open that cannot take the write lock for a recount (another process holds it) still
    /// opens; the next open recounts.
    @Test func aBusyLedgerOpensWithoutTheRecount() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path()
        let entries = autumnCalls(seed: 2, count: 400)
        try Self.openAt(path, version: 11).close()
        try Self.writeAsOlderBuild(entries[..<200], at: path)
        try Self.expectSearchesCounted(entries[..<200], at: path, "migrated")
        try Self.writeAsOlderBuild(entries[200...], at: path)
        let holder = try SQLiteConnection(path: path)
        try holder.execute("BEGIN IMMEDIATE")
        do {
            let reader = try LedgerReader(path: path, busyTimeoutMillis: 50)
            defer { reader.close() }
            let all = NaiveReport.report(entries, ReportQuery(since: 0, until: .max)).totals
            let report = try reader.report(ReportQuery(since: 0, until: .max))
            #expect(report.totals.requests == all.requests)
            #expect(report.totals.webSearches < all.webSearches, "not recounted yet")
        }
        try holder.execute("ROLLBACK")
        holder.close()
        // One that may not write opens too (a read-only file lets the transaction begin and
        // refuses its first write, as `query_only` does).
        do {
            let readOnly = try SQLiteConnection(path: path)
            defer { readOnly.close() }
            try readOnly.execute("PRAGMA query_only = 1")
            try Schema.migrate(readOnly)
            #expect(try readOnly.scalarInt("SELECT value FROM meta WHERE name = 'search_rollups_through'")
                    ?? 0 < PendingRollups.mark(on: readOnly))
        }
        // Elsewhere a read-only ledger fails, saying what it needs.
        #expect(LedgerError.sqlite(code: 1544, message: "attempt to write a readonly database", context: "PRAGMA user_version")
                    .description.contains("needs write access to the ledger file and its directory"))
        try Self.expectSearchesCounted(entries[...], at: path, "recounted by the next open")
    }

    /// A recount leaves the days before the prune mark as they are, even when an older build
    /// rolls up a late call of such a day: the searches of that day's pruned calls are gone.
    @Test func searchCountsBeforeThePruneMarkStay() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path()
        let entries = autumnCalls(seed: 8, count: 600)
        let writer = try LedgerWriter(path: path)
        #expect(appendAll(entries, to: writer).isEmpty)
        writer.close()
        let mark = (entries[300].startedAt / UnixTime.microsPerDay + 1) * UnixTime.microsPerDay
        #expect(try LedgerPrune.prune(path: path, before: mark).deleted > 0)
        let before = ReportQuery(since: 0, until: mark)
        let pruned = entries.filter { $0.startedAt < mark }
        func searchesBeforeMark() throws -> [Int] {
            let reader = try LedgerReader(path: path)
            defer { reader.close() }
            return Self.searchCounts(try reader.report(before).totals)
        }
        #expect(try searchesBeforeMark() == Self.searchCounts(NaiveReport.report(pruned, before).totals))
        var late = sampleEntry(9_999, startedAt: mark - 3_600_000_000, usage: Usage(inputTokens: 5, webSearches: 3))
        late.user = entries[0].user
        try Self.writeAsOlderBuild([late][...], at: path)
        var expected = Self.searchCounts(NaiveReport.report(pruned, before).totals)
        expected[0] += 1  // the late call, its searches not counted
        #expect(try searchesBeforeMark() == expected)
    }

    /// Calls pruned before v12 count no searches; the cells from the prune mark on count theirs.
    @Test func searchCountsFromThePruneMarkOn() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path()
        let entries = autumnCalls(seed: 4, count: 800)
        try Self.openAt(path, version: 11).close()
        try Self.writeAsOlderBuild(entries[...], at: path)
        // Pruned as a v11 build prunes: calls before a UTC midnight deleted, the mark recorded.
        let mark = (entries[400].startedAt / UnixTime.microsPerDay + 1) * UnixTime.microsPerDay
        do {
            let connection = try SQLiteConnection(path: path)
            try connection.execute("""
                DELETE FROM calls WHERE started_at < \(mark);
                INSERT INTO meta (name, value) VALUES ('pruned_before', \(mark))
                """)
            connection.close()
        }
        let kept = entries.filter { $0.startedAt >= mark }
        #expect(!kept.isEmpty && kept.count < entries.count)
        let reader = try LedgerReader(path: path)
        defer { reader.close() }
        let after = try reader.report(ReportQuery(since: mark, until: .max, groupBy: [.user]))
        let expected = NaiveReport.report(kept, ReportQuery(since: mark, until: .max, groupBy: [.user]))
        #expect(Self.searchCounts(after.totals) == Self.searchCounts(expected.totals))
        #expect(try reader.report(ReportQuery(since: 0, until: mark)).totals.webSearches == 0)
    }

    private static func openAt(_ path: String, version: Int) throws -> SQLiteConnection {
        let connection = try SQLiteConnection(path: path)
        try connection.configureForLedger()
        try Schema.migrate(connection, upTo: version)
        try connection.execute("PRAGMA user_version = \(version)")
        return connection
    }

    /// Writes calls as a v11 build did: rows with their searches, cells without, and only
    /// `rollups_through` moved.
    private static func writeAsOlderBuild(_ calls: ArraySlice<LedgerEntry>, at path: String, rollUp: Bool = true) throws {
        let connection = try SQLiteConnection(path: path)
        defer { connection.close() }
        try connection.configureForLedger()
        try connection.execute("BEGIN IMMEDIATE")
        let insert = try connection.prepare(CallRow.insertSQL)
        for e in calls {
            CallRow.bind(e, to: insert)
            insert.bind(Int64(0), at: CallRow.retryParameter)
            try insert.run()
        }
        insert.finalize()
        if rollUp {
            let searchMark = try connection.scalarInt("SELECT value FROM meta WHERE name = 'search_rollups_through'")
            let store = try RollupStore(connection: connection, searches: false)
            let tail = try PendingRollups(connection: connection, store: store)
            try tail.reload()
            try tail.flush()
            tail.finalize()
            store.finalize()
            if let searchMark {
                try connection.execute("UPDATE meta SET value = \(searchMark) WHERE name = 'search_rollups_through'")
            }
        }
        try connection.execute("COMMIT")
    }

    private static func searchCounts(_ f: ReportFigures) -> [Int] { [f.requests, f.webSearches, f.fileSearches] }

    /// Each of the four cell tables holds the searches of the calls rolled up (hour cells too,
    /// which whole-day reports hardly read).
    private static func expectCellsHoldTheirCallsSearches(_ connection: SQLiteConnection, _ note: Comment,
                                                          sourceLocation: SourceLocation = #_sourceLocation) throws {
        func sums(_ sql: String) throws -> [Int64] {
            let s = try connection.prepare(sql)
            defer { s.finalize() }
            #expect(try s.step())
            return [s.optionalInt64(at: 0) ?? 0, s.optionalInt64(at: 1) ?? 0]
        }
        let calls = try sums("""
            SELECT SUM(web_searches), SUM(file_searches) FROM calls
            WHERE rowid <= (SELECT value FROM meta WHERE name = 'rollups_through')
            """)
        #expect(calls != [0, 0], note, sourceLocation: sourceLocation)
        for table in ["rollup_hours", "rollup_days", "rollup_payer_hours", "rollup_payer_days"] {
            #expect(try sums("SELECT SUM(web_searches), SUM(file_searches) FROM \(table)") == calls, "\(note): \(table)",
                    sourceLocation: sourceLocation)
        }
    }

    private static func expectSearchesCounted(_ calls: ArraySlice<LedgerEntry>, at path: String, _ note: Comment,
                                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let reader = try LedgerReader(path: path)
        defer { reader.close() }
        #expect(try Schema.version(of: reader.connection) == 12, sourceLocation: sourceLocation)
        try reader.withConnection { try expectCellsHoldTheirCallsSearches($0, note, sourceLocation: sourceLocation) }
        for groupBy in [[ReportDimension.user], [.model], [.day, .team]] {
            let query = ReportQuery(since: 0, until: .max, groupBy: groupBy)
            let report = try reader.report(query)
            let expected = NaiveReport.report(Array(calls), query)
            #expect(report.rows.reduce(into: [:]) { $0[$1.values] = searchCounts($1.figures) }
                    == expected.rows.mapValues(searchCounts), note, sourceLocation: sourceLocation)
            #expect(searchCounts(report.totals) == searchCounts(expected.totals), note, sourceLocation: sourceLocation)
        }
    }

    @Test func refusesNewerSchema() throws {
        let dir = try TemporaryDirectory()
        let connection = try SQLiteConnection(path: dir.path())
        try connection.execute("PRAGMA user_version = \(Schema.latestVersion + 1)")
        #expect(throws: LedgerError.schemaTooNew(found: Schema.latestVersion + 1, supported: Schema.latestVersion)) {
            _ = try LedgerReader(path: dir.path())
        }
    }

    @Test func readerDoesNotCreateMissingFile() throws {
        let dir = try TemporaryDirectory()
        #expect(throws: LedgerError.self) { _ = try LedgerReader(path: dir.path("missing.sqlite")) }
    }

    @Test func usesWAL() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        defer { writer.close() }
        let other = try SQLiteConnection(path: dir.path())
        let s = try other.prepare("PRAGMA journal_mode")
        #expect(try s.step())
        #expect(s.string(at: 0) == "wal")
    }
}
