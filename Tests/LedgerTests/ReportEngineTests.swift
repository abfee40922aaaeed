import Foundation
import Metering
import Testing
@testable import Ledger
import LedgerTestSupport

/// The report engine (rollups, ragged edges, zones, retries) against `NaiveReport`.
@Suite struct ReportEngineTests {
    static let zones = ["UTC", "Europe/Berlin", "America/New_York"].map { TimeZone(identifier: $0)! }
    static func ledger(_ entries: [LedgerEntry], maxBatch: Int = 4_096) throws -> (TemporaryDirectory, LedgerReader) {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path(), options: .init(maxBatch: maxBatch))
        #expect(appendAll(entries, to: writer).isEmpty)
        writer.close()
        return (dir, try LedgerReader(path: dir.path()))
    }

    static func check(_ reader: LedgerReader, _ entries: [LedgerEntry], _ query: ReportQuery,
                      sourceLocation: SourceLocation = #_sourceLocation) throws {
        let report = try reader.report(query)
        let want = NaiveReport.report(entries, query)
        let context = "\(query.groupBy) \(query.timeZone.identifier) \(query.filters)"
        #expect(Set(report.rows.map(\.values)) == Set(want.rows.keys), "\(context)", sourceLocation: sourceLocation)
        for row in report.rows {
            guard let expected = want.rows[row.values] else { continue }
            NaiveReport.expectMatch(row.figures, expected, "\(context) \(row.values)", sourceLocation: sourceLocation)
        }
        NaiveReport.expectMatch(report.totals, want.totals, "\(context) totals", sourceLocation: sourceLocation)
    }

    static let groupings: [[ReportDimension]] = [
        [], [.user], [.team], [.model], [.provider], [.plan], [.key], [.day], [.week], [.month],
        [.day, .user], [.week, .model], [.month, .team, .user], [.user, .day, .key],
    ]

    /// One ledger for every grouping in a zone: building it is a third of the work, and the
    /// same each time (a failure names its grouping and zone).
    @Test(arguments: zones)
    func everyGroupingAndZone(zone: TimeZone) throws {
        let entries = autumnCalls()
        let (dir, reader) = try Self.ledger(entries)
        defer { reader.close(); _ = dir }
        // Ragged edges (mid-hour), whole hours, and the whole fixture.
        let periods: [(Int64, Int64)] = [
            (autumnStart + 1 * UnixTime.microsPerDay + 13 * 3_600_000_000 + 1_234_567,
             autumnStart + 11 * UnixTime.microsPerDay + 5 * 3_600_000_000 + 600_000_000),
            (autumnStart + 22 * 3_600_000_000, autumnStart + 9 * UnixTime.microsPerDay + 23 * 3_600_000_000),
            (0, .max),
        ]
        for groupBy in Self.groupings {
            for (since, until) in periods {
                var query = ReportQuery(since: since, until: until, groupBy: groupBy)
                query.timeZone = zone
                try Self.check(reader, entries, query)
            }
        }
    }

    @Test("a Berlin day in late October has 25 hours; New York's early-November Sunday too")
    func dstDays() throws {
        let berlin = TimeZone(identifier: "Europe/Berlin")!
        // 2025-10-26 in Berlin: 2025-10-25T22:00Z to 2025-10-26T23:00Z.
        let dayStart: Int64 = 1_761_429_600 * 1_000_000
        let entries = [sampleEntry(1, startedAt: dayStart - 1), sampleEntry(2, startedAt: dayStart),
                       sampleEntry(3, startedAt: dayStart + 25 * 3_600_000_000 - 1),
                       sampleEntry(4, startedAt: dayStart + 25 * 3_600_000_000)]
        let (dir, reader) = try Self.ledger(entries)
        defer { reader.close(); _ = dir }
        var query = ReportQuery(since: 0, until: .max, groupBy: [.day])
        query.timeZone = berlin
        let rows = try reader.report(query).rows.map { [$0.values[0]: $0.requests] }
        #expect(Set(rows) == [["2025-10-25": 1], ["2025-10-26": 2], ["2025-10-27": 1]])
        var filtered = query
        filtered.filters = [.day: "2025-10-26"]
        #expect(try reader.report(filtered).totals.requests == 2)
        #expect(try reader.report(filtered).totals.activeDays == 1)
        query.groupBy = []
        #expect(try reader.report(query).totals.activeDays == 3)
        for zone in Self.zones { var q = query; q.timeZone = zone; try Self.check(reader, entries, q) }
    }

    @Test func filters() throws {
        let entries = autumnCalls()
        let (dir, reader) = try Self.ledger(entries)
        defer { reader.close(); _ = dir }
        let filters: [[ReportDimension: String]] = [
            [.user: "ana"], [.team: "labs"], [.model: "gpt-4o"], [.user: ReportDimension.noneLabel],
            [.team: ReportDimension.noneLabel], [.key: "key-ben-1"], [.provider: "anthropic"], [.plan: "pro"],
            [.day: "2025-10-26"], [.week: "2025-10-27"], [.month: "2025-11"], [.user: "chen", .model: "gpt-4o-mini"],
            [.user: "nobody"], [.week: "2025-10-28"], [.day: "not-a-day"],
        ]
        for zone in Self.zones {
            for filter in filters {
                var query = ReportQuery(since: 0, until: .max, groupBy: [.user], filters: filter)
                query.timeZone = zone
                try Self.check(reader, entries, query)
            }
        }
    }

    @Test("retries match the definition whatever the append order, in memory or from the ledger")
    func retriesInAnyAppendOrder() throws {
        var rng = SplitMix(42)
        var entries = autumnCalls(seed: 3, count: 1_200)
        // The 120 s edge: exactly 120 s after is a retry, 1 µs more is not (and ties go by id).
        let t = autumnStart + 3 * UnixTime.microsPerDay
        for (n, offset) in [(0, Int64(0)), (1, 120_000_000), (2, 240_000_001), (3, 240_000_001), (4, 360_000_002)] {
            var e = sampleEntry(9_000 + n, startedAt: t + offset, user: "edge")
            e.requestHash = 77
            entries.append(e)
        }
        for round in 0..<3 {
            let order = round == 0 ? entries : entries.shuffled(using: &rng)
            let (dir, reader) = try Self.ledger(order, maxBatch: [4_096, 7, 1][round])
            defer { reader.close(); _ = dir }
            let flagged = try reader.withConnection { c -> Set<String> in
                let s = try c.prepare("SELECT id FROM calls WHERE retry = 1")
                var ids = Set<String>()
                while try s.step() { ids.insert(s.string(at: 0)) }
                return ids
            }
            let want = NaiveReport.retries(entries)
            #expect(flagged == want, "round \(round)")
            #expect(want.contains("call-9001") && !want.contains("call-9002") && want.contains("call-9003")
                    && !want.contains("call-9004"))
            #expect(want.count > 100)
            try Self.check(reader, entries, ReportQuery(since: 0, until: .max, groupBy: [.user]))
            try Self.check(reader, entries, ReportQuery(since: t - 1, until: t + 300_000_000, groupBy: [.user]))
        }
    }

    @Test("a rolled-back batch leaves rollups equal to a rebuild from the raw rows")
    func rollupsAfterRollback() throws {
        let entries = autumnCalls(seed: 11, count: 600)
        let dir = try TemporaryDirectory()
        let failures = Locked(0)
        // Rollups in every transaction, so the injected failure below hits every batch.
        let writer = try LedgerWriter(path: dir.path(), options: .init(
            retryInitialMillis: 5, rollupFlushRows: 1, onCommitFailure: { _, _ in failures.withLock { $0 += 1 } }))
        #expect(appendAll(Array(entries.prefix(300)), to: writer).isEmpty)
        // Fail every rollup write (a new cell or an update of a cached one) until the flag is
        // cleared: whole batches roll back and retry.
        let control = try SQLiteConnection(path: dir.path())
        try control.execute("""
            INSERT INTO meta(name, value) VALUES ('fail', 1);
            CREATE TRIGGER fail_rollups BEFORE INSERT ON rollup_days
            WHEN (SELECT value FROM meta WHERE name = 'fail') = 1 BEGIN SELECT RAISE(ABORT, 'injected'); END;
            CREATE TRIGGER fail_rollup_updates BEFORE UPDATE ON rollup_days
            WHEN (SELECT value FROM meta WHERE name = 'fail') = 1 BEGIN SELECT RAISE(ABORT, 'injected'); END;
            """)
        let done = Locked(false)
        for entry in entries.dropFirst(300) {
            writer.append(entry) { _ in done.withLock { $0 = true } }
        }
        while failures.current < 2 { Thread.sleep(forTimeInterval: 0.005) }
        #expect(try control.scalarInt("SELECT COUNT(*) FROM calls") == 300)
        try control.execute("UPDATE meta SET value = 0 WHERE name = 'fail'")
        writer.flush()
        writer.close()
        control.close()
        let reader = try LedgerReader(path: dir.path())
        defer { reader.close() }
        #expect(try reader.count() == 600)
        try Self.check(reader, entries, ReportQuery(since: 0, until: .max, groupBy: [.user, .model]))
        let built = try RollupSnapshot.take(reader)
        let rebuilt = try RollupSnapshot.rebuilt(from: dir.path())
        #expect(built == rebuilt)
    }

    @Test("migration v5 backfills retries and rollups of a v4 ledger")
    func migrationBackfill() throws {
        var rng = SplitMix(9)
        let entries = autumnCalls(seed: 5, count: 800).shuffled(using: &rng).map(\.withoutSearches)
        let dir = try TemporaryDirectory()
        do {
            let connection = try SQLiteConnection(path: dir.path())
            try connection.configureForLedger()
            try Schema.migrate(connection, upTo: 4)
            let insert = try connection.prepare(CallRow.v4InsertSQL)
            for e in entries { CallRow.bind(e, to: insert); try insert.run() }
            insert.finalize()
            connection.close()
        }
        let reader = try LedgerReader(path: dir.path())
        defer { reader.close() }
        #expect(try Schema.version(of: reader.connection) == Schema.latestVersion)
        for zone in Self.zones {
            var query = ReportQuery(since: 0, until: .max, groupBy: [.day, .user])
            query.timeZone = zone
            try Self.check(reader, entries, query)
        }
        // The same calls through the writer give the same cells.
        let (other, written) = try Self.ledger(entries)
        defer { written.close(); _ = other }
        #expect(try RollupSnapshot.take(reader) == RollupSnapshot.take(written))
    }

    @Test("money past Int64 in one cell (one user, one hour) stays exact")
    func hugeCellsAreExact() throws {
        let big = Money(picodollars: 5_000_000_000_000_000_000)
        let entries = (0..<4).map { sampleEntry($0, cost: big) }
        let (dir, reader) = try Self.ledger(entries)
        defer { reader.close(); _ = dir }
        for (since, until) in [(Int64(0), Int64.max), (day0, day0 + 3_600_000_000)] {
            let report = try reader.report(ReportQuery(since: since, until: until, groupBy: [.user]))
            #expect(report.totals.cost.picodollars == 4 * Int128(big.picodollars))
        }
    }

    @Test("(others) keeps sums and drops what does not add up")
    func othersRow() throws {
        let (dir, reader) = try Self.ledger(autumnCalls(count: 300))
        defer { reader.close(); _ = dir }
        let full = try reader.report(ReportQuery(since: 0, until: .max, groupBy: [.user]))
        let top = full.top(2)
        let others = try #require(top.rows.last)
        #expect(others.values == [Report.othersLabel])
        #expect(others.latencyP50Micros == nil && others.latencyP95Micros == nil && others.ttftP50Micros == nil)
        #expect(others.activeDays == 0)
        var sum = ReportFigures()
        for row in top.rows { sum.absorb(row.figures) }
        #expect(sum.cost == full.totals.cost && sum.retries == full.totals.retries && sum.retryCost == full.totals.retryCost)
        // By day: the two costliest days, still in date order.
        let (daysDir, daysReader) = try Self.ledger(autumnCalls(count: 1_200))  // eight days
        defer { daysReader.close(); _ = daysDir }
        let days = try daysReader.report(ReportQuery(since: 0, until: .max, groupBy: [.day]))
        #expect(days.rows.count > 3)
        let kept = days.top(2).rows.dropLast().map(\.values)
        let costliest = days.rows.sorted { $0.cost.picodollars > $1.cost.picodollars }.prefix(2).map(\.values)
        #expect(Set(kept) == Set(costliest))
        #expect(kept == kept.sorted { $0[0] < $1[0] }, "\(kept)")
    }

    @Test func bucketsStayWithinTheDocumentedError() {
        var value: Int64 = 0
        while value < 10_000_000_000_000 {
            let got = LatencyBuckets.representative(of: LatencyBuckets.index(of: value))
            #expect(abs(Double(got - value)) <= LatencyBuckets.relativeError * Double(value), "\(value)")
            value = value < 300 ? value + 1 : value + value / 97 + 1
        }
        #expect(LatencyBuckets.index(of: -5) == 0)
    }
}

/// Every rollup cell of a ledger by (level, span, number, key labels), to compare two ledgers.
enum RollupSnapshot {
    static func take(_ reader: LedgerReader) throws -> [String: RollupCell] {
        try reader.withConnection { try take($0) }
    }

    static func take(_ connection: SQLiteConnection) throws -> [String: RollupCell] {
        var cells: [String: RollupCell] = [:]
        for level in RollupLevel.allCases {
            let keys = try RollupStore.keys(level, on: connection)
            for span in RollupSpan.allCases {
                let s = try connection.prepare("SELECT \(span.column), key, \(RollupStore.cellColumns) FROM \(level.table(span))")
                while try s.step() {
                    let key = keys[s.int64(at: 1)]!
                    let name = "\(level) \(span) \(s.int64(at: 0)) \(String(describing: key))"
                    cells[name, default: RollupCell()].absorb(RollupStore.decodeCell(s, from: 2))
                }
            }
        }
        return cells
    }

    /// The cells a from-scratch backfill computes for the calls of the ledger at `path` (on a copy).
    static func rebuilt(from path: String) throws -> [String: RollupCell] {
        let copy = path + ".rebuild"
        let source = try SQLiteConnection(path: path)
        try source.execute("VACUUM INTO '\(copy)'")
        source.close()
        let connection = try SQLiteConnection(path: copy)
        defer { connection.close() }
        // One transaction, as a migration runs it: else each cell and flag commits alone, with
        // a rollback journal made, synced and deleted each time (a minute of a test's run).
        try connection.execute("BEGIN IMMEDIATE")
        for level in RollupLevel.allCases {
            for span in RollupSpan.allCases { try connection.execute("DELETE FROM \(level.table(span))") }
            try connection.execute("DELETE FROM \(level.keyTable)")
        }
        try connection.execute("UPDATE calls SET retry = 0")
        try RollupBackfill.run(connection)
        try connection.execute("COMMIT")
        return try take(connection)
    }
}
