import Foundation
import Ledger
import Metering
@testable import PostgresLedger
import XCTest
import LedgerTestSupport

final class LedgerMigrationTests: XCTestCase {
    /// 25,000 calls over ~19 months (so ~20 monthly partitions, 7 of the copy's batches) and a
    /// few keys copy with equal counts and sums; a second run copies nothing and still verifies.
    /// (100,000 calls took 90 s of a CI run, most of it SwiftNIO's encoding built in debug.)
    func testCallsOfNineteenMonthsMigrateWithIdenticalTotals() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let dir = try TemporaryDirectory()
        let clock = ContinuousClock()
        var started = clock.now
        let writer = try LedgerWriter(path: dir.path(), options: LedgerWriter.Options(maxBatch: 16_384))
        var calls = autumnCalls(count: 25_000)
        for i in calls.indices {
            // Four times the fixture's spacing: the span of 100,000 calls.
            let stretch = (calls[i].startedAt - autumnStart) * 3
            calls[i].startedAt += stretch
            calls[i].endedAt += stretch
            calls[i].firstByteAt = calls[i].firstByteAt.map { $0 + stretch }
        }
        XCTAssertEqual(appendAll(calls, to: writer), [])
        writer.close()
        let keys = try KeyStore(path: dir.path())
        for n in 0..<3 {
            try keys.insert(APIKeyRecord(id: "key_\(n)", secretHash: "hash\(n)", user: "user\(n)", team: n == 0 ? nil : "t",
                                         createdAt: Int64(n), revokedAt: n == 2 ? 5 : nil, admin: n == 1))
        }
        keys.close()
        print("migration fixture: \(calls.count) calls written to SQLite in \(clock.now - started)")

        started = clock.now
        let first = try LedgerMigration.run(from: dir.path(), to: db.location)
        print("migration: copied \(first.copied) calls in \(clock.now - started)")
        XCTAssertEqual(first.copied, 25_000)
        XCTAssertEqual(first.source.rows, 25_000)
        XCTAssertTrue(first.matches)
        XCTAssertEqual(first.source, first.target)
        XCTAssertEqual(first.targetKeys, 3)
        XCTAssertGreaterThan(first.target.cost.picodollars, 0)

        let again = try LedgerMigration.run(from: dir.path(), to: db.location)
        XCTAssertEqual(again.copied, 0)
        XCTAssertEqual(again.alreadyPresent, 25_000)
        XCTAssertTrue(again.matches)

        // The copy reads back as the source, and the months got partitions (not the default one).
        let source = try LedgerReader(path: dir.path())
        defer { source.close() }
        let target = try PostgresLedgerReader(location: db.location)
        defer { target.close() }
        let week = (autumnStart + 200 * UnixTime.microsPerDay, autumnStart + 207 * UnixTime.microsPerDay)
        let sourceWeek = try source.entries(since: week.0, until: week.1)
        XCTAssertGreaterThan(sourceWeek.count, 100)
        XCTAssertEqual(try target.entries(since: week.0, until: week.1), sourceWeek)
        XCTAssertEqual(try PostgresKeyStore(location: db.location).list(), try KeyStore(path: dir.path()).list())
        let session = try PostgresSession(db.location)
        defer { session.close() }
        XCTAssertEqual(try session.scalar("SELECT COUNT(*) FROM calls_default", as: Int64.self, context: "test"), 0)
        XCTAssertGreaterThanOrEqual(try session.scalar("SELECT COUNT(*) FROM pg_inherits WHERE inhparent = 'calls'::regclass",
                                                       as: Int64.self, context: "test") ?? 0, 20)
    }

    func testMismatchIsReported() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        XCTAssertEqual(appendAll(autumnCalls(count: 50), to: writer), [])
        writer.close()
        // A call the source lacks is already in the target.
        let extra = try PostgresLedgerWriter(location: db.location)
        XCTAssertEqual(appendAll([sampleEntry(999_999, startedAt: autumnStart)], to: extra), [])
        extra.close()
        let outcome = try LedgerMigration.run(from: dir.path(), to: db.location)
        XCTAssertFalse(outcome.matches)
        XCTAssertEqual(outcome.target.rows, 51)
    }

    /// A gateway killed before the move left a row only in its journal beside the SQLite file:
    /// migrate records it first (as `serve` would at its next start), so PostgreSQL has it.
    func testRowsOnlyInAStoppedGatewaysJournalAreMigrated() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let dir = try TemporaryDirectory()
        let calls = autumnCalls(count: 20)
        let writer = try LedgerWriter(path: dir.path())
        XCTAssertEqual(appendAll(Array(calls.prefix(19)), to: writer), [])
        writer.close()
        var journal: [UInt8] = []
        for call in calls { JournalRecord.append(call, to: &journal) }
        XCTAssertTrue(FileManager.default.createFile(atPath: dir.path() + ".rows-killed.1", contents: Data(journal)))
        XCTAssertTrue(FileManager.default.createFile(atPath: dir.path() + ".rows-killed.lock", contents: Data()))
        let outcome = try LedgerMigration.run(from: dir.path(), to: db.location)
        XCTAssertEqual(outcome.copied, 20)
        XCTAssertTrue(outcome.matches)
        XCTAssertEqual(outcome.target.cost.picodollars, calls.reduce(Int128(0)) { $0 + Int128($1.cost.picodollars) })
    }

    /// A pruned source keeps its old months only in rollups, which migrate does not copy: it
    /// refuses rather than report "ok" with months missing from PostgreSQL's reports.
    func testPrunedSourceIsRefused() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        XCTAssertEqual(appendAll(autumnCalls(count: 200), to: writer), [])
        writer.close()
        let cut = autumnStart + 5 * UnixTime.microsPerDay
        XCTAssertGreaterThan(try LedgerPrune.prune(path: dir.path(), before: cut - cut % UnixTime.microsPerDay).deleted, 0)
        XCTAssertThrowsError(try LedgerMigration.run(from: dir.path(), to: db.location)) { error in
            XCTAssertTrue("\(error)".contains("was pruned"), "\(error)")
        }
    }
}
