import Foundation
import Ledger
import Metering
@testable import PostgresLedger
import XCTest
import LedgerTestSupport

final class PostgresLedgerWriterTests: XCTestCase {
    func testRoundTripAndCallbacksRunAfterCommit() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let writer = try PostgresLedgerWriter(location: db.location)
        let reader = try PostgresLedgerReader(location: db.location)
        defer { reader.close() }
        var entries = autumnCalls(count: 300)
        // Every column: one call with Anthropic's 1-hour cache writes and their price.
        entries[3].usage.cacheWriteTokens = 30
        entries[3].usage.cacheWrite1hTokens = 20
        entries[3].price?.cacheWrite1h = Money(picodollars: 7_777)
        // And one with web searches at a fee of its own.
        entries[4].usage.webSearches = 3
        entries[4].price?.webSearch = Money(picodollars: 25_000_000_000)
        // And one with audio tokens at audio prices.
        entries[5].usage.audioInputTokens = 4
        entries[5].usage.audioOutputTokens = 2
        entries[5].price?.audioInput = Money(picodollars: 32_000_000)
        entries[5].price?.audioOutput = Money(picodollars: 64_000_000)
        // And one with file searches at a fee of its own.
        entries[6].usage.fileSearches = 2
        entries[6].price?.fileSearch = Money(picodollars: 3_000_000_000)
        // Invariant 1: when a callback runs, its row is visible to another connection, and
        // callbacks come in append order.
        let seen = Locked<[String]>([])
        let missing = Locked<[String]>([])
        for entry in entries {
            writer.append(entry) { result in
                if case .failure(let error) = result { XCTFail("\(error)") }
                seen.withLock { $0.append(entry.id) }
                if (try? reader.entry(id: entry.id)) == nil { missing.withLock { $0.append(entry.id) } }
            }
        }
        writer.flush()
        XCTAssertEqual(writer.backlog, 0)
        writer.close()
        XCTAssertEqual(seen.current, entries.map(\.id))
        XCTAssertEqual(missing.current, [])
        XCTAssertEqual(try reader.count(), entries.count)
        let sorted = entries.enumerated().sorted { ($0.element.startedAt, $0.offset) < ($1.element.startedAt, $1.offset) }.map(\.element)
        XCTAssertEqual(try reader.entries(since: .min, until: .max), sorted)
        XCTAssertEqual(try reader.entry(requestId: entries[7].requestId), entries[7])
    }

    func testDuplicateIdFailsOnlyThatRow() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let writer = try PostgresLedgerWriter(location: db.location)
        defer { writer.close() }
        let entries = autumnCalls(count: 10)
        XCTAssertEqual(appendAll(Array(entries[0..<5]), to: writer), [])
        // One batch: two new rows around one already in the ledger, and one repeated within the batch.
        let failures = appendAll([entries[5], entries[2], entries[6], entries[6]], to: writer)
        XCTAssertEqual(failures.count, 2)
        XCTAssertTrue(failures.allSatisfy(\.isConstraintViolation))
        let reader = try PostgresLedgerReader(location: db.location)
        defer { reader.close() }
        XCTAssertEqual(try reader.count(), 7)
    }

    /// PostgreSQL refuses U+0000 in text (22021) and would refuse the whole batch on every retry:
    /// a NUL is stored as U+FFFD, and the call and those after it commit.
    func testNULInTextIsStoredAsTheReplacementCharacter() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let writer = try PostgresLedgerWriter(location: db.location)
        defer { writer.close() }
        var entries = autumnCalls(count: 6)
        entries[1].modelRequested = "x\u{0}"
        entries[2].user = "a\u{0}b"
        entries[2].team = "\u{0}"
        entries[3].errorMessage = "upstream said \u{0}\u{0}"
        entries[4].requestId = "req-\u{0}"
        XCTAssertEqual(appendAll(entries, to: writer), [])
        let reader = try PostgresLedgerReader(location: db.location)
        defer { reader.close() }
        XCTAssertEqual(try reader.count(), entries.count)
        XCTAssertEqual(try reader.entry(id: entries[1].id)?.modelRequested, "x\u{FFFD}")
        XCTAssertEqual(try reader.entry(id: entries[2].id)?.user, "a\u{FFFD}b")
        XCTAssertEqual(try reader.entry(id: entries[2].id)?.team, "\u{FFFD}")
        XCTAssertEqual(try reader.entry(id: entries[3].id)?.errorMessage, "upstream said \u{FFFD}\u{FFFD}")
        XCTAssertEqual(try reader.entry(id: entries[4].id)?.requestId, "req-\u{FFFD}")
        XCTAssertEqual(try reader.entry(id: entries[5].id), entries[5])
        XCTAssertEqual(PostgresCallRow.storable("plain"), "plain")
    }

    /// Any other value PostgreSQL refuses (a data error, class 22; here a trigger raises one for
    /// some rows) fails only its row: the batch is split until it stands alone, the rest commits.
    func testRowPostgresRefusesToStoreFailsAloneAndTheRestCommits() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let commits = Locked<[Int]>([])
        var options = LedgerWriter.Options()
        options.onBatchCommitted = { rows, _ in commits.withLock { $0.append(rows) } }
        let writer = try PostgresLedgerWriter(location: db.location, options: options)
        defer { writer.close() }
        let admin = try PostgresSession(db.location)
        defer { admin.close() }
        try admin.execute("""
            CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.model_requested = 'poison' THEN
                    RAISE EXCEPTION 'poisoned value' USING ERRCODE = '22023';
                END IF;
                RETURN NEW;
            END $$
            """)
        try admin.execute("CREATE TRIGGER refuse_poison BEFORE INSERT ON calls FOR EACH ROW EXECUTE FUNCTION refuse_poison()")
        var entries = autumnCalls(count: 40)
        for index in [3, 17, 18] { entries[index].modelRequested = "poison" }
        let failures = appendAll(entries, to: writer)
        XCTAssertEqual(failures.count, 3)
        XCTAssertTrue(failures.allSatisfy { if case .postgres("22023", _, _) = $0 { return true } else { return false } },
                      "\(failures)")
        XCTAssertEqual(try admin.scalar("SELECT COUNT(*) FROM calls", as: Int64.self, context: "test"), 37)
        XCTAssertEqual(commits.current.reduce(0, +), 37)
    }

    /// A statement that gets no answer (here: blocked behind a lock another session holds) is
    /// abandoned after the writer's deadline, its connection closed; the retry reconnects, and
    /// the row commits once the database answers again. Before, the writer waited as long as the
    /// connection hung (for ever, on a dead network), and so did `close()`.
    func testStatementWithoutAnswerIsAbandonedAfterTheDeadlineAndRetried() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let failures = Locked<[LedgerError]>([])
        var options = LedgerWriter.Options(retryInitialMillis: 5, retryMaxMillis: 20)
        options.onCommitFailure = { error, _ in failures.withLock { $0.append(error) } }
        let writer = try PostgresLedgerWriter(location: db.location, options: options, answerTimeout: .milliseconds(300))
        defer { writer.close() }
        let locker = try PostgresSession(db.location)
        defer { locker.close() }
        try locker.execute("BEGIN")
        try locker.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
        let committed = Locked<Bool>(false)
        writer.append(sampleEntry(1, startedAt: UnixTime.nowMicros())) { result in
            if case .failure(let error) = result { XCTFail("\(error)") }
            committed.withLock { $0 = true }
        }
        Thread.sleep(forTimeInterval: 1.0)
        XCTAssertFalse(committed.current)
        try locker.execute("COMMIT")
        writer.flush()
        XCTAssertTrue(committed.current)
        let deadlines = failures.current.filter { "\($0)".contains("no answer within") }
        XCTAssertGreaterThanOrEqual(deadlines.count, 1, "\(failures.current)")
        XCTAssertEqual(try locker.scalar("SELECT COUNT(*) FROM calls", as: Int64.self, context: "test"), 1)
    }

    func testConcurrentAppendsFromManyThreads() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let batches = Locked<[Int]>([])
        var options = LedgerWriter.Options()
        options.onBatchCommitted = { rows, _ in batches.withLock { $0.append(rows) } }
        let writer = try PostgresLedgerWriter(location: db.location, options: options)
        let threads = 16, perThread = 500
        let committed = Locked(0)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for n in 0..<perThread {
                let entry = sampleEntry(t * perThread + n, startedAt: UnixTime.nowMicros())
                writer.append(entry) { result in
                    if case .success = result { committed.withLock { $0 += 1 } }
                }
            }
        }
        writer.close()
        XCTAssertEqual(committed.current, threads * perThread)
        let reader = try PostgresLedgerReader(location: db.location)
        defer { reader.close() }
        XCTAssertEqual(try reader.count(), threads * perThread)
        // Group commit: far fewer transactions than rows.
        XCTAssertLessThan(batches.current.count, threads * perThread / 4)
        print("concurrent appends: \(threads * perThread) rows in \(batches.current.count) transactions")
    }

    func testCloseFailsRowsAfterBoundedRetriesWhenTheServerIsGone() throws {
        let db = try ScratchDatabase()
        let writer = try PostgresLedgerWriter(location: db.location,
                                              options: LedgerWriter.Options(retryInitialMillis: 1, retryMaxMillis: 5, closeRetries: 2))
        db.drop()  // FORCE ends the writer's connection, and the database is gone.
        let failures = Locked<[LedgerError]>([])
        writer.append(sampleEntry(1, startedAt: UnixTime.nowMicros())) { result in
            if case .failure(let error) = result { failures.withLock { $0.append(error) } }
        }
        writer.close()
        XCTAssertEqual(failures.current.count, 1)
    }

    func testReplicasWriteOneLedgerAndMonthsGetPartitionsAsTheyCome() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let replicas = try (0..<3).map { _ in try PostgresLedgerWriter(location: db.location) }
        let now = UnixTime.nowMicros()
        let failures = Locked<[LedgerError]>([])
        DispatchQueue.concurrentPerform(iterations: replicas.count) { r in
            let found = appendAll((0..<1_000).map { sampleEntry(r * 1_000 + $0, startedAt: now + Int64($0)) }, to: replicas[r])
            failures.withLock { $0 += found }
        }
        XCTAssertEqual(failures.current, [])
        // Five months ahead: past the partitions made at open, so the writer makes more.
        let later = UTCMonth(containing: now).advanced(by: 5)
        XCTAssertEqual(appendAll([sampleEntry(9_999, startedAt: later.startMicros + 1)], to: replicas[0]), [])
        for replica in replicas { replica.close() }
        let session = try PostgresSession(db.location)
        defer { session.close() }
        XCTAssertEqual(try session.scalar("SELECT COUNT(*) FROM calls", as: Int64.self, context: "test"), 3_001)
        XCTAssertEqual(try session.scalar("SELECT COUNT(*) FROM calls_default", as: Int64.self, context: "test"), 0)
        XCTAssertTrue(try PostgresSchema.tableExists(session, "calls_" + later.advanced(by: 2).name.replacingOccurrences(of: "-", with: "_")))
    }

    /// The next month's partition is made a month ahead, and a report holding `calls` does not
    /// stall the batch that tries: the DDL gives up after 2 s and the batch commits.
    func testPartitionsAreMadeAMonthAheadWithoutWaitingForReaders() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let writer = try PostgresLedgerWriter(location: db.location)
        defer { writer.close() }
        let now = UnixTime.nowMicros()
        // Made at open: through two months ahead. A call a month ahead has its partition and is
        // when the one three months ahead is made.
        let nextMonth = UTCMonth(containing: now).advanced(by: 1)
        let ahead = "calls_" + nextMonth.advanced(by: 2).name.replacingOccurrences(of: "-", with: "_")
        let reader = try PostgresSession(db.location)
        defer { reader.close() }
        try reader.execute("BEGIN")
        _ = try reader.scalar("SELECT COUNT(*) FROM calls", as: Int64.self, context: "a long report")
        let started = ContinuousClock.now
        XCTAssertEqual(appendAll([sampleEntry(1, startedAt: nextMonth.startMicros + 1)], to: writer), [])
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(10))
        try reader.execute("COMMIT")
        XCTAssertFalse(try PostgresSchema.tableExists(reader, ahead))
        let quiet = try PostgresLedgerWriter(location: db.location)
        XCTAssertEqual(appendAll([sampleEntry(2, startedAt: nextMonth.startMicros + 2)], to: quiet), [])
        quiet.close()
        XCTAssertTrue(try PostgresSchema.tableExists(reader, ahead))
    }

    func testReconnectsAfterLosingItsConnection() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        let failures = Locked(0)
        var options = LedgerWriter.Options(retryInitialMillis: 5, retryMaxMillis: 20)
        options.onCommitFailure = { _, _ in failures.withLock { $0 += 1 } }
        let writer = try PostgresLedgerWriter(location: db.location, options: options)
        defer { writer.close() }
        XCTAssertEqual(appendAll([sampleEntry(1, startedAt: UnixTime.nowMicros())], to: writer), [])
        let admin = try PostgresSession(db.location)
        defer { admin.close() }
        // Ends every other session of the database, the writer's among them.
        try admin.execute("""
            SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
            """)
        Thread.sleep(forTimeInterval: 0.2)
        XCTAssertEqual(appendAll([sampleEntry(2, startedAt: UnixTime.nowMicros())], to: writer), [])
        // The writer sees the closed connection before the batch (reconnects at once) or on the
        // failed attempt (reconnects on the retry); either way the row commits.
        print("reconnect: \(failures.current) failed attempts")
        XCTAssertEqual(try admin.scalar("SELECT COUNT(*) FROM calls", as: Int64.self, context: "test"), 2)
    }

    func testSchemaIsIdempotentAndPartitionsExist() throws {
        let db = try ScratchDatabase()
        defer { db.drop() }
        // Several replicas opening at once migrate once.
        let failures = Locked<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            do { try PostgresKeyStore(location: db.location).close() } catch { failures.withLock { $0.append("\(error)") } }
        }
        XCTAssertEqual(failures.current, [])
        let session = try PostgresSession(db.location)
        defer { session.close() }
        XCTAssertEqual(try PostgresSchema.version(session), PostgresSchema.latestVersion)
        let month = UTCMonth(containing: UnixTime.nowMicros())
        for offset in -1...2 {
            let name = "calls_" + month.advanced(by: offset).name.replacingOccurrences(of: "-", with: "_")
            XCTAssertTrue(try PostgresSchema.tableExists(session, name), name)
        }
        XCTAssertEqual(UTCMonth(containing: autumnStart).name, "2025-10")
        XCTAssertEqual(UTCMonth(containing: -1).name, "1969-12")
        XCTAssertEqual(UTCMonth(containing: autumnStart).advanced(by: 3).name, "2026-01")
    }
}
