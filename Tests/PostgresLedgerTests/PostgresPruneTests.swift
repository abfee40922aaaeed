import Foundation
import Ledger
import Metering
@testable import PostgresLedger
import XCTest
import LedgerTestSupport

/// `ledger prune` on PostgreSQL: whole-hour reports keep their figures, equal to those of a
/// SQLite ledger pruned at the same dates; raw rows and whole partitions before the date go.
final class PostgresPruneTests: XCTestCase {
    static let hour: Int64 = 3_600_000_000
    static let day = UnixTime.microsPerDay
    static func midnight(_ date: String) -> Int64 { Day(date)!.unixSeconds * UnixTime.microsPerSecond }
    /// The first prune cuts September's partition, the second October's (in Berlin's DST-end week).
    static let firstCut = midnight("2025-09-28")
    static let secondCut = midnight("2025-10-27")

    /// Three weeks of the autumn fixture, shifted to late August, late September and late
    /// October 2025 (so four monthly partitions hold calls), plus a retry across each cut: its
    /// first call is pruned, the retry is not.
    static func threeMonths() -> [LedgerEntry] {
        var entries: [LedgerEntry] = []
        for (chunk, shift) in [(0, -60 * day), (1, -30 * day), (2, Int64(0))] {
            for var entry in autumnCalls(seed: UInt64(11 + chunk), count: 1_000) {
                entry.id = "m\(chunk)-\(entry.id)"
                entry.requestId = "m\(chunk)-\(entry.requestId)"
                entry.startedAt += shift
                entry.firstByteAt = entry.firstByteAt.map { $0 + shift }
                entry.endedAt += shift
                entries.append(entry)
            }
        }
        for (n, cut) in [firstCut, secondCut].enumerated() {
            for (offset, start) in [cut - 60_000_000, cut + 30_000_000].enumerated() {
                var entry = sampleEntry(80_000 + 2 * n + offset, startedAt: start, user: "ana", team: "core")
                entry.requestHash = 4_242 + Int64(n)
                entries.append(entry)
            }
        }
        return entries
    }

    static let groupings = PostgresReaderParityTests.groupings

    /// Whole-hour periods: all time, UTC months, Berlin's October, days across each cut, hours across each cut.
    static let periods: [(Int64, Int64)] = [
        (0, .max),
        (midnight("2025-08-01"), midnight("2025-09-01")),
        (midnight("2025-09-01"), midnight("2025-10-01")),
        (midnight("2025-10-01"), midnight("2025-11-01")),
        (midnight("2025-10-01") - 2 * hour, midnight("2025-11-01") - hour),
        (firstCut - 3 * day, firstCut + 2 * day),
        (firstCut - 7 * hour, firstCut + 30 * hour),
        (secondCut - 2 * day, secondCut + 1 * day),
        (secondCut - 5 * hour, secondCut + 3 * hour),
    ]

    /// Groupings reported from a copy of each period (each copy loads the cells of its own period);
    /// every grouping is also reported from one reused copy of all time.
    static let perPeriodGroupings: [[ReportDimension]] = [[], [.model], [.day, .user], [.user, .day, .key]]

    static let zones = PostgresReaderParityTests.zones

    static func reports(_ source: any LedgerSource) throws -> [Report] {
        var all: [Report] = []
        for zone in zones {
            for groupBy in groupings {
                for (since, until) in periods {
                    var query = ReportQuery(since: since, until: until, groupBy: groupBy)
                    query.timeZone = zone
                    all.append(try source.report(query))
                }
            }
        }
        return all
    }

    func assertSame(_ a: [Report], _ b: [Report], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        var differing = 0
        for (x, y) in zip(a, b) where x != y {
            differing += 1
            if differing <= 3 {
                XCTFail("\(what): \(x.query.groupBy) \(x.query.timeZone.identifier) \(x.query.since)..\(x.query.until)",
                        file: file, line: line)
            }
        }
        XCTAssertEqual(differing, 0, what, file: file, line: line)
    }

    func testReportsSurviveTwoPrunesAndMatchAPrunedSQLiteLedger() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let entries = Self.threeMonths()
        let session = try PostgresSession(db.location)
        defer { session.close() }
        try PostgresSchema.prepare(session)
        try PostgresSchema.ensurePartitions(session, from: UTCMonth(containing: Self.midnight("2025-08-01")),
                                            through: UTCMonth(containing: Self.midnight("2025-11-01")))
        let pgWriter = try PostgresLedgerWriter(location: db.location)
        XCTAssertEqual(appendAll(entries, to: pgWriter), [])
        pgWriter.close()
        let dir = try TemporaryDirectory()
        let sqliteWriter = try LedgerWriter(path: dir.path())
        XCTAssertEqual(appendAll(entries, to: sqliteWriter), [])
        sqliteWriter.close()

        let pg = try PostgresLedgerReader(location: db.location)
        defer { pg.close() }
        /// All reports of a stage from one copy of all time.
        func reusedReports() throws -> [Report] {
            let reusing = try PostgresLedgerReader(location: db.location, reusesReportCopies: true)
            defer { reusing.close() }
            _ = try reusing.report(ReportQuery(since: 0, until: .max))
            return try Self.reports(reusing)
        }
        /// Each period from a copy of its own. A copy holds the calls and cells of a period, whatever
        /// the grouping or the time zone, so one copy per period answers all of them (a copy per
        /// report made this test take minutes in a debug build).
        func perPeriodReports(_ source: any LedgerSource) throws -> [Report] {
            var all: [Report] = []
            for (since, until) in Self.periods {
                let copying = source is LedgerReader ? nil : try PostgresLedgerReader(location: db.location, reusesReportCopies: true)
                defer { copying?.close() }
                for zone in Self.zones {
                    for groupBy in Self.perPeriodGroupings {
                        var query = ReportQuery(since: since, until: until, groupBy: groupBy)
                        query.timeZone = zone
                        all.append(try (copying ?? source).report(query))
                    }
                }
            }
            return all
        }
        func allReports(_ source: any LedgerSource) throws -> [Report] {
            try perPeriodReports(source) + (source is LedgerReader ? Self.reports(source) : reusedReports())
        }
        let sqlite = try LedgerReader(path: dir.path())
        defer { sqlite.close() }
        let clock = ContinuousClock()
        let original = try allReports(pg)
        assertSame(original, try allReports(sqlite), "unpruned PostgreSQL vs SQLite")
        let totals = try pg.report(ReportQuery(since: 0, until: .max)).totals
        XCTAssertGreaterThan(totals.retries, 0)
        // Calls with searches, so the reports `assertSame` compares after each prune show that
        // the pruned calls' cells keep them (schema v8).
        XCTAssertGreaterThan(totals.webSearches, 0)
        XCTAssertGreaterThan(totals.fileSearches, 0)

        for (n, cut) in [Self.firstCut, Self.secondCut].enumerated() {
            var started = clock.now
            let outcome = try PostgresLedgerPrune.prune(location: db.location, before: cut)
            let pgTime = clock.now - started
            let earlier = n == 0 ? Int64.min : Self.firstCut
            XCTAssertEqual(outcome.deleted, entries.filter { $0.startedAt >= earlier && $0.startedAt < cut }.count)
            XCTAssertEqual(try LedgerPrune.prune(path: dir.path(), before: cut).deleted, outcome.deleted)
            XCTAssertEqual(try pg.count(), entries.filter { $0.startedAt >= cut }.count)
            XCTAssertEqual(try pg.entries(since: .min, until: cut), [])
            XCTAssertEqual(try PostgresLedgerPrune.mark(on: session), cut)
            let context = try session.scalar("SELECT COUNT(*) FROM calls_retry_context", as: Int64.self, context: "") ?? 0
            XCTAssertGreaterThan(context, 0, "the retry window before the cut is kept")
            started = clock.now
            let after = try allReports(pg)
            print("prune \(n + 1) at \(Day(unixSeconds: cut / 1_000_000)): \(outcome.deleted) calls deleted in \(pgTime); "
                  + "\(after.count) reports in \(clock.now - started); \(context) calls kept as retry context")
            assertSame(after, original, "PostgreSQL after prune \(n + 1) vs before")
            assertSame(after, try allReports(sqlite), "PostgreSQL vs SQLite after prune \(n + 1)")
        }
        // Whole partitions before the last cut are gone; the partly pruned one stays.
        for (month, exists) in [("2025_08", false), ("2025_09", false), ("2025_10", true), ("2025_11", true)] {
            XCTAssertEqual(try PostgresSchema.tableExists(session, "calls_\(month)"), exists, month)
        }
        let cells = try session.scalar("SELECT COUNT(*) FROM rollup_cells_pruned", as: Int64.self, context: "") ?? 0
        XCTAssertGreaterThan(cells, 0)
        // An earlier date than the mark changes nothing; a reused report copy answers the same.
        XCTAssertEqual(try PostgresLedgerPrune.prune(location: db.location, before: Self.firstCut).deleted, 0)
        let reusing = try PostgresLedgerReader(location: db.location, reusesReportCopies: true)
        defer { reusing.close() }
        let all = ReportQuery(since: 0, until: .max, groupBy: [.month, .model])
        XCTAssertEqual(try reusing.report(all), try sqlite.report(all))
        XCTAssertEqual(try reusing.report(ReportQuery(since: Self.firstCut, until: .max, groupBy: [.key])),
                       try sqlite.report(ReportQuery(since: Self.firstCut, until: .max, groupBy: [.key])))
    }

    /// A server writing this month's calls during the prune (which drops a partition and locks
    /// `calls` briefly) loses none and sees no error.
    func testPruneWhileAWriterAppends() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let session = try PostgresSession(db.location)
        defer { session.close() }
        try PostgresSchema.prepare(session)
        try PostgresSchema.ensurePartitions(session, from: UTCMonth(containing: Self.midnight("2025-08-01")),
                                            through: UTCMonth(containing: Self.midnight("2025-11-01")))
        let old = Self.threeMonths()
        let writer = try PostgresLedgerWriter(location: db.location, options: LedgerWriter.Options(maxBatch: 50))
        defer { writer.close() }
        XCTAssertEqual(appendAll(old, to: writer), [])
        let now = UnixTime.nowMicros()
        let fresh = (0..<3_000).map { sampleEntry(900_000 + $0, startedAt: now + Int64($0) * 1_000) }
        let failures = Locked<[LedgerError]>([])
        let done = DispatchSemaphore(value: 0)
        let appending = Thread {
            for entry in fresh {
                writer.append(entry) { if case .failure(let error) = $0 { failures.withLock { $0.append(error) } } }
                usleep(300)
            }
            done.signal()
        }
        appending.start()
        usleep(100_000)
        let outcome = try PostgresLedgerPrune.prune(location: db.location, before: Self.secondCut)
        let settledDuringPrune = fresh.count - writer.backlog
        done.wait()
        writer.flush()
        let reader = try PostgresLedgerReader(location: db.location)
        defer { reader.close() }
        XCTAssertEqual(try reader.count(), old.filter { $0.startedAt >= Self.secondCut }.count + fresh.count)
        print("prune during writes: \(outcome.deleted) deleted; the writer appended \(fresh.count), "
              + "about \(settledDuringPrune) of them before the prune returned")
        XCTAssertEqual(failures.current, [])
        XCTAssertEqual(outcome.deleted, old.filter { $0.startedAt < Self.secondCut }.count)
        XCTAssertFalse(try PostgresSchema.tableExists(session, "calls_2025_09"))
    }

    func testRefusesDatesThatAreNotMidnightsOrTooRecent() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let now = Self.midnight("2026-12-02")
        func refusal(_ before: Int64) -> String? {
            do {
                _ = try PostgresLedgerPrune.prune(location: db.location, before: before, now: now)
                return nil
            } catch let refusal as LedgerPrune.Refusal {
                return refusal.description
            } catch {
                return "unexpected \(error)"
            }
        }
        XCTAssertEqual(refusal(Self.firstCut + 1), "the prune date must be a UTC midnight")
        XCTAssertTrue(refusal(Self.midnight("2026-12-01"))?.contains("last day of the previous UTC month") == true)
        // Wednesday 2 December: the ISO week began on Monday the 30th, so the Sunday before is the latest date.
        XCTAssertTrue(refusal(Self.midnight("2026-11-30"))?.contains("ISO week") == true)
        XCTAssertNil(refusal(Self.midnight("2026-11-29")))
        let session = try PostgresSession(db.location)
        defer { session.close() }
        XCTAssertEqual(try PostgresLedgerPrune.mark(on: session), Self.midnight("2026-11-29"))
        // Migrating again changes nothing.
        try PostgresSchema.prepare(session)
        try PostgresSchema.prepare(session)
        XCTAssertEqual(try PostgresSchema.version(session), PostgresSchema.latestVersion)
        XCTAssertEqual(PostgresSchema.latestVersion, 8)
    }
}
