import Foundation
import Metering
import Testing
@testable import Ledger
import LedgerTestSupport

@Suite struct LedgerPruneTests {
    /// 2025-10-29T00:00:00Z: five days into the autumn fixture.
    static let cut = autumnStart + 5 * UnixTime.microsPerDay

    @Test("reports over whole hours give the same figures after the rows before the date are pruned")
    func wholeHourReportsSurvive() throws {
        let entries = autumnCalls()
        let dir = try TemporaryDirectory()
        // Small batches and rollups flushed every 700 calls.
        let writer = try LedgerWriter(path: dir.path(), options: .init(maxBatch: 300, rollupFlushRows: 700,
                                                                      rollupFlushInterval: .seconds(3_600)))
        #expect(appendAll(entries, to: writer).isEmpty)
        writer.close()
        let hour: Int64 = 3_600_000_000
        let periods: [(Int64, Int64)] = [
            (autumnStart, autumnStart + 10 * UnixTime.microsPerDay),
            (autumnStart + 7 * hour, Self.cut + 30 * hour),
            (0, .max),
        ]
        let zones = ["UTC", "Europe/Berlin"].map { TimeZone(identifier: $0)! }
        func reports() throws -> [Report] {
            let reader = try LedgerReader(path: dir.path())
            defer { reader.close() }
            var all: [Report] = []
            for zone in zones {
                for groupBy in ReportEngineTests.groupings {
                    for (since, until) in periods {
                        var query = ReportQuery(since: since, until: until, groupBy: groupBy)
                        query.timeZone = zone
                        all.append(try reader.report(query))
                    }
                }
            }
            return all
        }
        let before = try reports()
        let outcome = try LedgerPrune.prune(path: dir.path(), before: Self.cut)
        let pruned = entries.filter { $0.startedAt < Self.cut }.count
        #expect(outcome.deleted == pruned)
        #expect(outcome.rolledUp == 0, "the writer rolls its tail up when it closes")
        let after = try reports()
        for (b, a) in zip(before, after) {
            #expect(a == b, "\(b.query.groupBy) \(b.query.timeZone.identifier) \(b.query.since)")
        }
        let reader = try LedgerReader(path: dir.path())
        defer { reader.close() }
        #expect(try reader.count() == entries.count - pruned)
        #expect(try reader.entries(since: 0, until: Self.cut).isEmpty)

        // A writer appending after the prune keeps reports exact (its caches reload).
        let more = try LedgerWriter(path: dir.path())
        let late = sampleEntry(90_000, startedAt: autumnStart + 20 * UnixTime.microsPerDay)
        #expect(appendAll([late], to: more).isEmpty)
        more.close()
        let total = try reader.report(ReportQuery(since: 0, until: .max)).totals
        #expect(total.requests == entries.count + 1)
    }

    /// A journal segment holds every row since it opened, committed or not, and can span weeks at
    /// low traffic. A stopped gateway's is recorded before the prune (its uncommitted row counts);
    /// one whose gateway stops after the prune does not bring the pruned rows back.
    @Test("journals of stopped gateways go in before a prune; one orphaned after it does not re-insert pruned rows")
    func journalsAndPrune() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path()
        func micros(_ iso: String) -> Int64 { Int64(ISO8601DateFormatter().date(from: iso)!.timeIntervalSince1970) * 1_000_000 }
        var rows = (1...5).map { sampleEntry($0, startedAt: micros("2026-01-1\($0)T12:00:00Z")) }
        rows.append(sampleEntry(6, startedAt: micros("2026-02-03T12:00:00Z")))
        let writer = try LedgerWriter(path: path)
        #expect(appendAll(rows, to: writer).isEmpty)
        writer.close()
        // What a killed gateway leaves: its segment, and its lock file, free.
        func leaveJournal(_ name: String, _ entries: [LedgerEntry]) {
            var bytes: [UInt8] = []
            for entry in entries { JournalRecord.append(entry, to: &bytes) }
            _ = FileManager.default.createFile(atPath: path + ".rows-\(name).1", contents: Data(bytes))
            _ = FileManager.default.createFile(atPath: path + ".rows-\(name).lock", contents: Data())
        }
        let uncommitted = sampleEntry(7, startedAt: micros("2026-01-20T12:00:00Z"))
        leaveJournal("killed", rows + [uncommitted])
        let reader = try LedgerReader(path: path)
        defer { reader.close() }
        let outcome = try LedgerPrune.prune(path: path, before: micros("2026-01-31T00:00:00Z"),
                                            now: micros("2026-02-05T12:00:00Z"))
        // The five committed January rows; the one only in the journal went in first, last of
        // all, and the last row is always kept (`prune`).
        #expect(outcome.deleted == 5)
        let pruned = try reader.report(ReportQuery(since: 0, until: .max)).totals
        #expect(pruned.requests == 7)

        leaveJournal("later", rows)
        let restarted = try LedgerWriter(path: path)
        restarted.close()
        #expect(restarted.replayed.rows == 0 && restarted.replayed.alreadyRecorded == rows.count)
        let after = try reader.report(ReportQuery(since: 0, until: .max)).totals
        #expect(after.requests == 7 && after.cost == pruned.cost)
    }

    /// A journal left behind that cannot go in whole (a record of a newer tokenctl): the prune
    /// would take its rows for pruned ones; it refuses, naming what to do.
    @Test("prune refuses while a stopped gateway's journal cannot be recorded in full")
    func pruneRefusesAJournalItCannotRecord() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path()
        let writer = try LedgerWriter(path: path)
        writer.close()
        _ = FileManager.default.createFile(atPath: path + ".rows-newer.1", contents: Data(LedgerJournalTests.newerRecord))
        _ = FileManager.default.createFile(atPath: path + ".rows-newer.lock", contents: Data())
        let now = Day("2026-12-02")!.unixSeconds * UnixTime.microsPerSecond
        #expect(throws: JournalLeftBehind.self) {
            try LedgerPrune.prune(path: path, before: Day("2026-11-01")!.unixSeconds * UnixTime.microsPerSecond, now: now)
        }
        #expect(FileManager.default.fileExists(atPath: path + ".rows-newer.1"))
    }

    @Test("prune refuses dates that are not UTC midnights or reach into the current month or ISO week")
    func refusals() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        writer.close()
        let now = Day("2026-12-02")!.unixSeconds * UnixTime.microsPerSecond
        #expect(throws: LedgerPrune.Refusal.self) { try LedgerPrune.prune(path: dir.path(), before: Self.cut + 1, now: now) }
        let december = Day("2026-12-01")!.unixSeconds * UnixTime.microsPerSecond
        #expect(throws: LedgerPrune.Refusal.self) { try LedgerPrune.prune(path: dir.path(), before: december, now: now) }
        // 2026-12-02 is a Wednesday: its ISO week began on Monday 30 November, so the 30th is refused
        // (a zone ahead of UTC started that week on the 29th) and the Sunday before is the latest date.
        let lastOfNovember = Day("2026-11-30")!.unixSeconds * UnixTime.microsPerSecond
        #expect(throws: LedgerPrune.Refusal.self) { try LedgerPrune.prune(path: dir.path(), before: lastOfNovember, now: now) }
        let sunday = Day("2026-11-29")!.unixSeconds * UnixTime.microsPerSecond
        #expect(try LedgerPrune.prune(path: dir.path(), before: sunday, now: now).deleted == 0)
        #expect(throws: LedgerPrune.Refusal.self) { try LedgerPrune.prune(path: dir.path() + "x", before: sunday, now: now) }
        // On Sunday 1 March the week began on 23 February: the previous month's last day is not
        // enough, the weekly budget still needs the rows from the 23rd.
        // (14:00 UTC: at midnight it is still February in zones behind UTC.)
        let firstOfMarch = Day("2026-03-01")!.unixSeconds * UnixTime.microsPerSecond + 14 * 3_600_000_000
        let weekBefore = Day("2026-02-22")!.unixSeconds * UnixTime.microsPerSecond
        #expect(throws: LedgerPrune.Refusal.self) {
            try LedgerPrune.prune(path: dir.path(), before: Day("2026-02-28")!.unixSeconds * UnixTime.microsPerSecond, now: firstOfMarch)
        }
        #expect(try LedgerPrune.prune(path: dir.path(), before: weekBefore, now: firstOfMarch).deleted == 0)
        // docs/postgres.md's example: --before 2026-01-01 from 1 February 2026 on; on 6 January the
        // latest date is 2025-12-31.
        func micros(_ day: String) -> Int64 { Day(day)!.unixSeconds * UnixTime.microsPerSecond }
        let hours = { (count: Int64) in count * 3_600 * UnixTime.microsPerSecond }
        #expect(throws: Never.self) { try LedgerPrune.checkDate(micros("2026-01-01"), now: micros("2026-02-01") + hours(14)) }
        // At 03:00 UTC on 1 February it is still 31 January in Los Angeles: January's budgets there
        // are rebuilt from January's rows.
        #expect(throws: LedgerPrune.Refusal.self) {
            try LedgerPrune.checkDate(micros("2026-01-01"), now: micros("2026-02-01") + hours(3))
        }
        // At 03:00 UTC on Monday 2 March it is still Sunday there: its week began on 23 February.
        #expect(throws: LedgerPrune.Refusal.self) {
            try LedgerPrune.checkDate(micros("2026-02-28"), now: micros("2026-03-02") + hours(3))
        }
        #expect(throws: Never.self) { try LedgerPrune.checkDate(micros("2026-02-22"), now: micros("2026-03-02") + hours(3)) }
        #expect(throws: Never.self) { try LedgerPrune.checkDate(micros("2026-02-28"), now: micros("2026-03-02") + hours(14)) }
        #expect(throws: LedgerPrune.Refusal.self) { try LedgerPrune.checkDate(micros("2026-01-01"), now: micros("2026-01-31")) }
        #expect(throws: Never.self) { try LedgerPrune.checkDate(micros("2025-12-31"), now: micros("2026-01-06")) }
        #expect(throws: LedgerPrune.Refusal.self) { try LedgerPrune.checkDate(micros("2026-01-01"), now: micros("2026-01-06")) }
        // Both refusals name the latest date allowed (an operator had to find it by trying).
        for refused in ["2026-12-01", "2026-11-30"] {
            let refusal = #expect(throws: LedgerPrune.Refusal.self) {
                try LedgerPrune.checkDate(micros(refused), now: micros("2026-12-02") + hours(12))
            }
            #expect(refusal?.description.hasSuffix("the latest allowed today is 2026-11-29") == true, "\(refused)")
        }
    }
}
