import Testing
@testable import Ledger
import LedgerTestSupport
import Metering

/// The rollup cells' search counts (schema v12, `SearchRollups`): counted from the calls a ledger
/// holds, and recounted after an older build rolled calls up without them.
@Suite struct SearchRollupsTests {
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
        // One that may not write opens too.
        do {
            let readOnly = try SQLiteConnection(path: path)
            defer { readOnly.close() }
            try readOnly.execute("PRAGMA query_only = 1")
            try Schema.migrate(readOnly)
            #expect(try readOnly.scalarInt("SELECT value FROM meta WHERE name = 'search_rollups_through'")
                    ?? 0 < PendingRollups.mark(on: readOnly))
        }
        // A read-only ledger's other failures say what tokenctl needs (the message as errors print it).
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

    /// The writer's flush recounts first even with no calls of its own waiting: a prune flushes
    /// so in its transaction before it deletes, and the deleted calls' searches would be lost
    /// had an open's recount been skipped (a busy ledger).
    @Test func aFlushWithNothingWaitingRecounts() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path()
        let entries = autumnCalls(seed: 9, count: 300)
        try Self.openAt(path, version: 11).close()
        try Self.writeAsOlderBuild(entries[...], at: path)
        let connection = try SQLiteConnection(path: path)
        defer { connection.close() }
        try connection.configureForLedger()
        try Schema.migrate(connection, upTo: 11)
        try connection.execute("BEGIN IMMEDIATE")
        try SearchRollups.addCountColumnsAndMark(connection)  // v12 without an open's recount
        try connection.execute("PRAGMA user_version = 12; COMMIT")
        try connection.execute("BEGIN IMMEDIATE")
        let store = try RollupStore(connection: connection)
        let tail = try PendingRollups(connection: connection, store: store)
        try tail.reload()
        #expect(tail.rows == 0)
        try tail.flush()
        tail.finalize()
        store.finalize()
        try connection.execute("COMMIT")
        try Self.expectCellsHoldTheirCallsSearches(connection, "an empty flush")
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
    }

    private static func openAt(_ path: String, version: Int) throws -> SQLiteConnection {
        let connection = try SQLiteConnection(path: path)
        try connection.configureForLedger()
        try Schema.migrate(connection, upTo: version)
        try connection.execute("PRAGMA user_version = \(version)")
        return connection
    }

    /// Writes calls as a v11 build did: rows with their searches, cells without, and only
    /// `rollups_through` moved. Its own rollup (not `PendingRollups.flush`, which recounts first).
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
            let store = try RollupStore(connection: connection, searches: false)
            let tail = try connection.prepare("SELECT \(RollupFacts.callColumns()) FROM calls WHERE rowid > ?1")
            tail.bind(try PendingRollups.mark(on: connection), at: 1)
            var cells: [CellAddress: RollupCellBuilder] = [:]
            while try tail.step() {
                let (key, facts) = RollupFacts.call(tail)
                let ids = try store.ids(of: key)
                for level in RollupLevel.allCases {
                    for span in RollupSpan.allCases {
                        cells[CellAddress(level: level, span: span, number: span.number(of: facts.startedAt), key: ids[level]),
                              default: RollupCellBuilder()].add(facts, quarter: span.quarter(of: facts.startedAt))
                    }
                }
            }
            tail.finalize()
            for (address, builder) in cells { try store.merge(builder.built(), into: address) }
            store.finalize()
            try connection.execute("UPDATE meta SET value = (SELECT MAX(rowid) FROM calls) WHERE name = 'rollups_through'")
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
        #expect(try Schema.version(of: reader.connection) == Schema.latestVersion, sourceLocation: sourceLocation)
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
}
