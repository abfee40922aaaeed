import Foundation
import Metering
import Testing
@testable import Ledger
import LedgerTestSupport

/// The payer-level rollups (per user, team, plan; schema v6) and the writer's cell cache,
/// against `NaiveReport` and against a rebuild from the raw rows.
@Suite struct PayerRollupTests {
    static let berlin = TimeZone(identifier: "Europe/Berlin")!
    /// 2025-10-31T23:00:00Z and 2025-11-30T23:00:00Z: November in Berlin.
    static let berlinNovember: (Int64, Int64) = (1_761_951_600 * 1_000_000, 1_764_543_600 * 1_000_000)

    /// About seven weeks of calls (2025-10-24 to 2025-12-10) around a whole November.
    static func season() -> [LedgerEntry] {
        var entries = autumnCalls(seed: 21, count: 2_400)
        for i in entries.indices {
            // Stretch the 8-minute spacing to 28 minutes, keeping each retry's offset.
            let offset = entries[i].startedAt - autumnStart
            let latency = entries[i].endedAt - entries[i].startedAt
            entries[i].startedAt = autumnStart + offset / 8 * 28 + offset % 8
            entries[i].endedAt = entries[i].startedAt + latency
            entries[i].firstByteAt = entries[i].ttftMicros.map { entries[i].startedAt + $0 }
        }
        return entries
    }

    static func query(_ groupBy: [ReportDimension], _ zone: TimeZone, _ period: (Int64, Int64),
                      filters: [ReportDimension: String] = [:], figures: ReportFigureSet = .all) -> ReportQuery {
        var q = ReportQuery(since: period.0, until: period.1, groupBy: groupBy, filters: filters)
        q.timeZone = zone
        q.figures = figures
        return q
    }

    static let payerGroupings: [[ReportDimension]] = [
        [], [.user], [.team], [.plan], [.day], [.week], [.month], [.day, .user], [.day, .user, .team], [.month, .plan],
    ]

    @Test("which level answers which query")
    func levelChoice() {
        #expect(RollupLevel.answering(groupBy: [.user], filters: []) == .payer)
        #expect(RollupLevel.answering(groupBy: [.day, .user, .team, .plan, .week, .month], filters: [.user, .team, .plan, .day]) == .payer)
        #expect(RollupLevel.answering(groupBy: [.user, .model], filters: []) == .detailed)
        #expect(RollupLevel.answering(groupBy: [.user], filters: [.provider]) == .detailed)
        #expect(RollupLevel.answering(groupBy: [.key], filters: []) == .detailed)
    }

    @Test("a Berlin month and a UTC month by user, team, plan and days match the naive computation")
    func monthsMatchNaive() throws {
        let entries = Self.season()
        let (dir, reader) = try ReportEngineTests.ledger(entries)
        defer { reader.close(); _ = dir }
        let utcNovember = (Int64(1_761_955_200) * 1_000_000, Int64(1_764_547_200) * 1_000_000)
        let ragged = (Self.berlinNovember.0 + 1_234_567_890, Self.berlinNovember.1 - 987_654_321)
        for groupBy in Self.payerGroupings {
            try ReportEngineTests.check(reader, entries, Self.query(groupBy, Self.berlin, Self.berlinNovember))
            try ReportEngineTests.check(reader, entries, Self.query(groupBy, ReportEngineTests.zones[0], utcNovember))
            try ReportEngineTests.check(reader, entries, Self.query(groupBy, Self.berlin, ragged))
        }
        for filters in [[ReportDimension.user: "ana"], [.team: "labs"], [.plan: ReportDimension.noneLabel], [.month: "2025-11"]] {
            try ReportEngineTests.check(reader, entries, Self.query([.day, .user], Self.berlin, (0, .max), filters: filters))
        }
    }

    @Test("payer cells and detailed cells give the same report")
    func levelsAgree() throws {
        let entries = Self.season()
        let (dir, reader) = try ReportEngineTests.ledger(entries)
        defer { reader.close(); _ = dir }
        for zone in ReportEngineTests.zones {
            for groupBy in Self.payerGroupings {
                let q = Self.query(groupBy, zone, Self.berlinNovember)
                let (payer, detailed) = try reader.withConnection { c in
                    (try ReportAggregation(query: q, level: .payer).run(on: c),
                     try ReportAggregation(query: q, level: .detailed).run(on: c))
                }
                #expect(payer == detailed, "\(groupBy) \(zone.identifier)")
                #expect(!payer.rows.isEmpty)
            }
        }
    }

    @Test("reports without model, provider or key read the payer cells only")
    func payerCellsAreRead() throws {
        let entries = Self.season()
        let (dir, reader) = try ReportEngineTests.ledger(entries)
        defer { reader.close(); _ = dir }
        let payerCells = try reader.withConnection { try $0.scalarInt("SELECT COUNT(*) FROM rollup_payer_days") ?? 0 }
        let detailedCells = try reader.withConnection { try $0.scalarInt("SELECT COUNT(*) FROM rollup_days") ?? 0 }
        #expect(payerCells > 0 && payerCells * 2 < detailedCells)
        // Without detailed cells, payer-level reports are still whole; a by-model one is not.
        try reader.withConnection { try $0.execute("DELETE FROM rollup_days; DELETE FROM rollup_hours") }
        try ReportEngineTests.check(reader, entries, Self.query([.user], Self.berlin, Self.berlinNovember))
        try ReportEngineTests.check(reader, entries, Self.query([.day, .team], Self.berlin, Self.berlinNovember))
        let byModel = try reader.report(Self.query([.model], Self.berlin, Self.berlinNovember))
        #expect(byModel.totals.requests < NaiveReport.report(entries, Self.query([.model], Self.berlin, Self.berlinNovember)).totals.requests)
    }

    @Test("figures .sums: the same report without percentiles")
    func sumsOnly() throws {
        let entries = Self.season()
        let (dir, reader) = try ReportEngineTests.ledger(entries)
        defer { reader.close(); _ = dir }
        for groupBy in [[ReportDimension.day, .user, .team], [.user], [.model], [.month]] {
            let all = try reader.report(Self.query(groupBy, Self.berlin, Self.berlinNovember))
            let sums = try reader.report(Self.query(groupBy, Self.berlin, Self.berlinNovember, figures: .sums))
            func stripped(_ f: ReportFigures) -> ReportFigures {
                var f = f
                f.latencyP50Micros = nil
                f.latencyP95Micros = nil
                f.ttftP50Micros = nil
                return f
            }
            #expect(sums.rows.map(\.values) == all.rows.map(\.values))
            #expect(sums.rows.map(\.figures) == all.rows.map { stripped($0.figures) })
            #expect(sums.totals == stripped(all.totals))
            #expect(all.totals.latencyP50Micros != nil && sums.totals.latencyP50Micros == nil)
        }
    }

    @Test("migration v6 fills payer cells of a v5 ledger equal to the writer's", arguments: [4, 5])
    func migration(from version: Int) throws {
        var rng = SplitMix(17)
        let entries = Self.season().shuffled(using: &rng).map(\.withoutSearches)
        let dir = try TemporaryDirectory()
        do {
            let connection = try SQLiteConnection(path: dir.path())
            try connection.configureForLedger()
            try Schema.migrate(connection, upTo: 4)
            let insert = try connection.prepare(CallRow.v4InsertSQL)
            for e in entries { CallRow.bind(e, to: insert); try insert.run() }
            insert.finalize()
            try Schema.migrate(connection, upTo: version)
            #expect(try Schema.version(of: connection) == version)
            connection.close()
        }
        let reader = try LedgerReader(path: dir.path())
        defer { reader.close() }
        #expect(try Schema.version(of: reader.connection) == Schema.latestVersion)
        try ReportEngineTests.check(reader, entries, Self.query([.day, .user], Self.berlin, Self.berlinNovember))
        let (other, written) = try ReportEngineTests.ledger(entries)
        defer { written.close(); _ = other }
        let migrated = try RollupSnapshot.take(reader)
        #expect(migrated == (try RollupSnapshot.take(written)))
        #expect(migrated.keys.contains { $0.hasPrefix("payer day") } && migrated.keys.contains { $0.hasPrefix("payer hour") })
    }

    @Test("reports add the calls the writer has not yet put in the cells; closing flushes them")
    func pendingTail() throws {
        let entries = Self.season()
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path(), options: .init(
            maxBatch: 50, rollupFlushRows: 1_000, rollupFlushInterval: .seconds(3_600)))
        #expect(appendAll(entries, to: writer).isEmpty)
        let reader = try LedgerReader(path: dir.path())
        defer { reader.close() }
        let (mark, last) = try reader.withConnection { c in
            (try PendingRollups.mark(on: c), try c.scalarInt("SELECT MAX(rowid) FROM calls") ?? 0)
        }
        #expect(mark > 0 && mark < last && last - mark < 1_000)
        for groupBy in [[ReportDimension.user], [.day, .user], [.model], [.week, .key]] {
            try ReportEngineTests.check(reader, entries, Self.query(groupBy, Self.berlin, Self.berlinNovember))
            try ReportEngineTests.check(reader, entries, Self.query(groupBy, ReportEngineTests.zones[0], (0, .max)))
        }
        writer.close()
        #expect(try reader.withConnection { try PendingRollups.mark(on: $0) } == last)
        #expect(try RollupSnapshot.take(reader) == RollupSnapshot.rebuilt(from: dir.path()))
    }

    @Test("the writer's cells stay equal to a rebuild: late rows, another writer in between",
          arguments: [1, 7, 100, 16_384])
    func cellsUnderLateRows(flushRows: Int) throws {
        var rng = SplitMix(UInt64(flushRows))
        // Mostly in order with some rows minutes to days late, in small batches.
        var entries = Self.season()
        for _ in 0..<200 {
            let i = Int.random(in: 0..<entries.count, using: &rng), j = min(entries.count - 1, i + Int.random(in: 1..<300, using: &rng))
            entries.swapAt(i, j)
        }
        let dir = try TemporaryDirectory()
        let options = LedgerWriter.Options(maxBatch: 37, rollupFlushRows: flushRows)
        let first = try LedgerWriter(path: dir.path(), options: options)
        #expect(appendAll(Array(entries[..<1_000]), to: first).isEmpty)
        // Another writer (another process, in effect) adds to the same cells meanwhile.
        let second = try LedgerWriter(path: dir.path(), options: options)
        #expect(appendAll(Array(entries[1_000..<1_600]), to: second).isEmpty)
        second.close()
        #expect(appendAll(Array(entries[1_600...]), to: first).isEmpty)
        // A duplicate is rejected and counted nowhere.
        #expect(appendAll([entries[5]], to: first).count == 1)
        first.close()
        let reader = try LedgerReader(path: dir.path())
        defer { reader.close() }
        #expect(try RollupSnapshot.take(reader) == RollupSnapshot.rebuilt(from: dir.path()))
        try ReportEngineTests.check(reader, entries, Self.query([.user], Self.berlin, Self.berlinNovember))
    }
}
