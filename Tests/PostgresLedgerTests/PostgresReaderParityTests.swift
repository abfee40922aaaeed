import Foundation
import Ledger
import Metering
@testable import PostgresLedger
import XCTest
import LedgerTestSupport

/// The same calls written to SQLite and to PostgreSQL read back and report identically.
final class PostgresReaderParityTests: XCTestCase {
    static let groupings: [[ReportDimension]] = [
        [], [.user], [.team], [.model], [.provider], [.plan], [.key], [.day], [.week], [.month],
        [.day, .user], [.week, .model], [.month, .team, .user], [.user, .day, .key],
    ]
    static let zones = ["UTC", "Europe/Berlin"].map { TimeZone(identifier: $0)! }

    func testReadersAndReportsMatchSQLite() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        // 1,200 calls: eight days from Oct 24, across Berlin's DST end (each PostgreSQL report copies its rows).
        let entries = autumnCalls(count: 1_200)
        let dir = try TemporaryDirectory()
        let sqliteWriter = try LedgerWriter(path: dir.path())
        XCTAssertEqual(appendAll(entries, to: sqliteWriter), [])
        sqliteWriter.close()
        let sqlite = try LedgerReader(path: dir.path())
        defer { sqlite.close() }
        let pgWriter = try PostgresLedgerWriter(location: db.location)
        XCTAssertEqual(appendAll(entries, to: pgWriter), [])
        pgWriter.close()
        let pg = try PostgresLedgerReader(location: db.location)
        defer { pg.close() }

        XCTAssertEqual(try pg.count(), try sqlite.count())
        XCTAssertEqual(try pg.entries(since: .min, until: .max), try sqlite.entries(since: .min, until: .max))
        let mid = autumnStart + 5 * UnixTime.microsPerDay + 1_234_567
        XCTAssertEqual(try pg.entries(since: mid, until: mid + UnixTime.microsPerDay),
                       try sqlite.entries(since: mid, until: mid + UnixTime.microsPerDay))
        XCTAssertEqual(try pg.entry(id: "call-77"), try sqlite.entry(id: "call-77"))
        XCTAssertEqual(try pg.entry(requestId: "req-78"), try sqlite.entry(requestId: "req-78"))
        XCTAssertNil(try pg.entry(id: "nope"))
        func payers(_ rows: [PayerSpend]) -> Set<PayerSpend> { Set(rows) }
        XCTAssertEqual(payers(try pg.spend(since: mid)), payers(try sqlite.spend(since: mid)))
        XCTAssertEqual(try pg.spendPerMinute(since: mid).map { "\($0.minute) \($0.cost)" },
                       try sqlite.spendPerMinute(since: mid).map { "\($0.minute) \($0.cost)" })
        XCTAssertEqual(try pg.activityPerMinute(since: mid, until: mid + 3 * UnixTime.microsPerDay),
                       try sqlite.activityPerMinute(since: mid, until: mid + 3 * UnixTime.microsPerDay))

        // Report parity: every grouping, UTC and Berlin, ragged and whole-hour periods and all time.
        let periods: [(Int64, Int64)] = [
            (autumnStart + 1 * UnixTime.microsPerDay + 13 * 3_600_000_000 + 1_234_567,
             autumnStart + 6 * UnixTime.microsPerDay + 5 * 3_600_000_000 + 600_000_000),
            (autumnStart + 22 * 3_600_000_000, autumnStart + 7 * UnixTime.microsPerDay + 23 * 3_600_000_000),
        ]
        // One copy per period: a copy holds the period's calls whatever the grouping or the zone
        // (a copy per report took most of this test's time in a debug build).
        var compared = 0
        for (since, until) in periods {
            let copying = try PostgresLedgerReader(location: db.location, reusesReportCopies: true)
            defer { copying.close() }
            for zone in Self.zones {
                for groupBy in Self.groupings {
                    var query = ReportQuery(since: since, until: until, groupBy: groupBy)
                    query.timeZone = zone
                    XCTAssertEqual(try copying.report(query), try sqlite.report(query), "\(groupBy) \(zone.identifier) \(since)")
                    compared += 1
                }
            }
        }
        let everything = ReportQuery(since: 0, until: .max, groupBy: [.user, .model])
        XCTAssertEqual(try pg.report(everything), try sqlite.report(everything))
        var filtered = ReportQuery(since: 0, until: .max, groupBy: [.day], filters: [.user: "ana"])
        filtered.figures = .sums
        XCTAssertEqual(try pg.report(filtered), try sqlite.report(filtered))
        // A reader that keeps its copy answers later reports inside it from the copy, identically.
        let reusing = try PostgresLedgerReader(location: db.location, reusesReportCopies: true)
        defer { reusing.close() }
        for (since, until, groupBy) in [(Int64(0), Int64.max, [ReportDimension.user]), (mid, mid + UnixTime.microsPerDay, [.day, .model]),
                                        (mid - 7_000_000, mid + 3_600_000_000, [.key])] {
            let query = ReportQuery(since: since, until: until, groupBy: groupBy)
            XCTAssertEqual(try reusing.report(query), try sqlite.report(query), "reused copy \(groupBy)")
        }
        let retries = try sqlite.report(ReportQuery(since: 0, until: .max)).totals.retries
        XCTAssertGreaterThan(retries, 0, "the fixture has retries")
        print("report parity: \(compared + 2) reports identical; \(retries) retries")
    }
}
