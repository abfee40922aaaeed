import Foundation
import Metering
import Testing
@testable import Ledger
import LedgerTestSupport

/// The ledger's journal (`LedgerJournal`): staged rows are answered once written there, SQLite
/// gets them behind it, and a start replays what a stopped gateway left.
@Suite struct LedgerJournalTests {
    /// Every optional field set, a stream, and text that is not ASCII.
    static let full: LedgerEntry = {
        var entry = sampleEntry(8)
        entry.modelServed = "gpt-4o-mini-2024-07-18"
        entry.user = "zoë"
        entry.errorMessage = "upstream said: \"no\" ✗"
        entry.plan = "pro"
        entry.outputCapRequested = 4_096
        entry.outputCapApplied = 1_024
        entry.requestHash = -8_070_450_532_247_928_832
        entry.usage.cacheWriteTokens = 3
        entry.usage.cacheWrite1hTokens = 2
        return entry
    }()

    /// Every optional field absent.
    static let bare = LedgerEntry(id: "bare", requestId: "req_bare", startedAt: 1, endedAt: 2, dialect: .anthropic,
                                  route: "messages", status: 401, outcome: .refusedAuth)

    static func records(_ entries: [LedgerEntry]) -> [UInt8] {
        var bytes: [UInt8] = []
        for entry in entries { JournalRecord.append(entry, to: &bytes) }
        return bytes
    }

    static func journalFiles(_ dir: TemporaryDirectory) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.url.path).filter { $0.contains(LedgerJournal.infix) }.sorted()
    }

    @Test func recordsReadBackEveryField() {
        #expect(Self.full.stream && Self.full.modelServed != Self.full.modelRequested)
        let bytes = Self.records([Self.full, Self.bare, sampleEntry(1)])
        let read = bytes.withUnsafeBytes { JournalRecord.read($0) }
        #expect(read.entries == [Self.full, Self.bare, sampleEntry(1)])
        #expect(read.validBytes == bytes.count && read.unreadable == 0)
    }

    /// Format 1 is what earlier builds wrote and read: a row without 1-hour cache writes, at the
    /// default price for them, is still written so (a rollback keeps what a killed gateway
    /// left), and reads back the same; one with them takes format 2; one with web searches (or a
    /// fee for them of its own) format 3; one with audio tokens (or audio prices) format 4; one
    /// with file searches (or a fee for them of its own) format 5.
    @Test func rowsWithoutHourWritesKeepFormatOne() {
        let plain = Self.records([sampleEntry(5)])
        #expect(plain[JournalRecord.headerBytes] == 1)
        #expect(plain.withUnsafeBytes { JournalRecord.read($0) }.entries == [sampleEntry(5)])
        var priced = sampleEntry(6)
        priced.price?.cacheWrite1h = Money(picodollars: 1)
        var searched = Self.full
        searched.usage.webSearches = 3
        var searchPriced = sampleEntry(7)
        searchPriced.price?.webSearch = Money(picodollars: 25_000_000_000)
        var audio = Self.full
        audio.usage.audioOutputTokens = 2
        var audioPriced = sampleEntry(8)
        audioPriced.price?.audioInput = Money(picodollars: 32_000_000)
        var files = Self.full
        files.usage.fileSearches = 2
        var filePriced = sampleEntry(9)
        filePriced.price?.fileSearch = Money(picodollars: 3_000_000_000)
        for (entry, format) in [(Self.full, 2), (priced, 2), (searched, 3), (searchPriced, 3), (audio, 4), (audioPriced, 4),
                                (files, 5), (filePriced, 5)] as [(LedgerEntry, UInt8)] {
            let bytes = Self.records([entry])
            #expect(bytes[JournalRecord.headerBytes] == format)
            #expect(bytes.withUnsafeBytes { JournalRecord.read($0) }.entries == [entry])
        }
        #expect(JournalRecord.version == 5)
    }

    @Test func readingStopsAtARecordCutShortOrDamaged() {
        let whole = Self.records([sampleEntry(1), sampleEntry(2)])
        let third = Self.records([sampleEntry(3)])
        let cut = whole + third.prefix(third.count - 5)
        let readCut = cut.withUnsafeBytes { JournalRecord.read($0) }
        #expect(readCut.entries == [sampleEntry(1), sampleEntry(2)])
        #expect(readCut.validBytes == whole.count)

        var damaged = whole + third
        damaged[whole.count + 20] ^= 0x40
        #expect(damaged.withUnsafeBytes { JournalRecord.read($0) }.entries.count == 2)

        let zeros = whole + [UInt8](repeating: 0, count: 4_096)
        #expect(zeros.withUnsafeBytes { JournalRecord.read($0) }.validBytes == whole.count)
    }

    @Test func aWholeRecordThisBuildCannotReadIsSkipped() {
        let bytes = Self.records([sampleEntry(1)]) + Self.newerRecord + Self.records([sampleEntry(2)])
        let read = bytes.withUnsafeBytes { JournalRecord.read($0) }
        #expect(read.entries == [sampleEntry(1), sampleEntry(2)])
        #expect(read.unreadable == 1 && read.validBytes == bytes.count)
    }

    /// A record of a format version this build does not know, with a right checksum.
    static let newerRecord: [UInt8] = {
        var bytes = records([sampleEntry(99)])
        bytes[JournalRecord.headerBytes] = JournalRecord.version + 1
        let sum = bytes.withUnsafeBufferPointer {
            JournalRecord.checksum(UnsafeBufferPointer(rebasing: $0[JournalRecord.headerBytes...]))
        }
        for index in 0..<4 { bytes[4 + index] = UInt8(truncatingIfNeeded: sum >> (8 * index)) }
        return bytes
    }()

    @Test func stagedRowsAreAnsweredWhileSQLiteCannotCommit() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path(), options: .init(busyTimeoutMillis: 20, retryInitialMillis: 2, retryMaxMillis: 20))
        let blocker = try SQLiteConnection(path: dir.path(), busyTimeoutMillis: 0)
        try blocker.execute("BEGIN IMMEDIATE")
        let answered = Locked<[Int]>([])
        for n in 0..<5 {
            if writer.stage(sampleEntry(n), onCommit: { result in
                if case .success = result { answered.withLock { $0.append(n) } }
            }) { writer.recordStaged() }
        }
        writer.recordStaged()
        // Answered from the journal, in order, while SQLite's write lock is held elsewhere.
        #expect(answered.current == [0, 1, 2, 3, 4])
        #expect(try blocker.scalarInt("SELECT count(*) FROM calls") == 0)
        #expect(try Self.journalFiles(dir).count == 2, "a segment and its lock")
        #expect(!writer.flush(timeout: .milliseconds(100)), "a bounded flush gives up while commits fail")
        try blocker.execute("COMMIT")
        writer.flush()
        #expect(try blocker.scalarInt("SELECT count(*) FROM calls") == 5)
        writer.close()
        #expect(try Self.journalFiles(dir).isEmpty, "a clean stop removes the journal")
    }

    /// The writer waits `commitLinger` for more journaled rows, but not when a caller waits for
    /// its row's commit.
    @Test func onlyJournaledRowsWaitForTheLinger() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path(), options: .init(commitLinger: .seconds(30)))
        defer { writer.close() }
        let reader = try SQLiteConnection(path: dir.path())
        if writer.stage(sampleEntry(1), onCommit: { _ in }) { writer.recordStaged() }
        Thread.sleep(forTimeInterval: 0.2)
        #expect(try reader.scalarInt("SELECT count(*) FROM calls") == 0, "lingering")
        let committed = DispatchSemaphore(value: 0)
        writer.append(sampleEntry(2)) { _ in committed.signal() }
        #expect(committed.wait(timeout: .now() + 10) == .success, "an appended row cuts the linger short")
        #expect(try reader.scalarInt("SELECT count(*) FROM calls") == 2)
    }

    /// A ledger names users and what they spend: a new one, its WAL and its journal are not
    /// readable by other users of the machine (SQLite alone makes them 0644).
    @Test func aNewLedgerAndItsFilesAreNotWorldReadable() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path(), options: .init(commitLinger: .seconds(30)))
        defer { writer.close() }
        if writer.stage(sampleEntry(1), onCommit: { _ in }) { writer.recordStaged() }
        let committed = DispatchSemaphore(value: 0)
        writer.append(sampleEntry(2)) { _ in committed.signal() }
        #expect(committed.wait(timeout: .now() + 10) == .success)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.url.path)
            .filter { !$0.hasSuffix(".lock") }
        #expect(files.contains { $0.hasSuffix("-wal") } && files.contains { $0.contains(LedgerJournal.infix) })
        for file in files {
            let mode = try #require(FileManager.default.attributesOfItem(atPath: dir.url.path + "/" + file)[.posixPermissions] as? Int)
            #expect(mode & 0o007 == 0, "\(file) is \(String(mode, radix: 8))")
        }
    }

    @Test func aStartReplaysTheJournalOfAGatewayThatIsGone() throws {
        let dir = try TemporaryDirectory()
        let first = try LedgerWriter(path: dir.path())
        for n in 0..<3 { first.append(sampleEntry(n)) { _ in } }
        first.close()
        // A gateway killed with rows 0–3 and 5 in its journal, in two segments (the second cut
        // short by a power cut), of which 0–2 had reached SQLite.
        let base = dir.path() + LedgerJournal.infix + "gone"
        try Data().write(to: URL(fileURLWithPath: base + ".lock"))
        try Data(Self.records((0..<4).map { sampleEntry($0) })).write(to: URL(fileURLWithPath: base + ".1"))
        let tail = Self.records([sampleEntry(5)]) + Self.records([sampleEntry(6)]).prefix(9)
        try Data(tail).write(to: URL(fileURLWithPath: base + ".2"))
        // Another gateway's journal, still running (its lock is held): left alone.
        let live = dir.path() + LedgerJournal.infix + "live"
        try Data(Self.records([sampleEntry(9)])).write(to: URL(fileURLWithPath: live + ".1"))
        let liveLock = open(live + ".lock", O_CREAT | O_RDWR, 0o644)
        defer { close(liveLock) }
        #expect(flock(liveLock, LOCK_EX | LOCK_NB) == 0)

        let writer = try LedgerWriter(path: dir.path())
        var expected = JournalReplay()
        expected.rows = 2
        expected.alreadyRecorded = 3
        expected.damagedBytes = 9
        #expect(writer.replayed == expected)
        let reader = try LedgerReader(path: dir.path())
        defer { reader.close() }
        #expect(try reader.count() == 5)
        #expect(try reader.entry(id: "call-5") == sampleEntry(5))
        writer.close()
        #expect(try Self.journalFiles(dir) == ["ledger.sqlite.rows-live.1", "ledger.sqlite.rows-live.lock"])
    }

    @Test func aJournalWithARecordThisBuildCannotReadStays() throws {
        let dir = try TemporaryDirectory()
        let base = dir.path() + LedgerJournal.infix + "newer"
        try Data().write(to: URL(fileURLWithPath: base + ".lock"))
        try Data(Self.records([sampleEntry(1)]) + Self.newerRecord).write(to: URL(fileURLWithPath: base + ".1"))
        let writer = try LedgerWriter(path: dir.path())
        #expect(writer.replayed.rows == 1 && writer.replayed.unreadable == 1)
        writer.close()
        #expect(try Self.journalFiles(dir) == ["ledger.sqlite.rows-newer.1", "ledger.sqlite.rows-newer.lock"],
                "kept for a build that can read it")
    }

    @Test func closingTwiceLeavesOtherFilesAlone() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        writer.close()
        // Likely the number the journal's lock had: the lowest free one.
        let other = open(dir.path("other"), O_CREAT | O_RDWR, 0o644)
        defer { close(other) }
        writer.close()
        #expect(fcntl(other, F_GETFD) != -1)
    }

    /// Three rows, a segment each (one record fills a segment of 1 byte), settled by hand.
    static func threeSegments(_ dir: TemporaryDirectory) throws -> (LedgerJournal, [GroupCommitQueue.Pending], String) {
        let journal = try #require(LedgerJournal(databasePath: dir.path(), segmentBytes: 1))
        let queue = GroupCommitQueue(maxBatch: 10)
        for n in 0..<3 {
            _ = journal.stage(sampleEntry(n)) { _ in }
            journal.write(into: queue)
        }
        var batch: [GroupCommitQueue.Pending] = []
        #expect(queue.takeBatch(into: &batch) && batch.count == 3)
        let name = URL(fileURLWithPath: journal.base).lastPathComponent
        #expect(try journalFiles(dir) == [name + ".1", name + ".2", name + ".3", name + ".lock"])
        return (journal, batch, name)
    }

    @Test func aFullSegmentGoesOnceItsRowsAreInTheLedger() throws {
        let dir = try TemporaryDirectory()
        let (journal, batch, name) = try Self.threeSegments(dir)
        batch[0].onCommit(.success(()))
        // A duplicate id: the ledger has the row (a replay).
        batch[1].onCommit(.failure(.sqlite(code: 19, message: "UNIQUE constraint failed: calls.id", context: "insert")))
        batch[2].onCommit(.success(()))
        #expect(try Self.journalFiles(dir) == [name + ".3", name + ".lock"], "the segment being written stays")
        journal.finish()
        #expect(try Self.journalFiles(dir).isEmpty)
    }

    @Test func aSegmentWithARowThatFailedStaysForTheNextStart() throws {
        let dir = try TemporaryDirectory()
        let (journal, batch, name) = try Self.threeSegments(dir)
        batch[0].onCommit(.success(()))
        batch[1].onCommit(.failure(.closed))
        batch[2].onCommit(.success(()))
        journal.finish()
        #expect(try Self.journalFiles(dir) == [name + ".2", name + ".lock"])
    }

    @Test func rowsTheJournalCannotTakeWaitForTheirCommit() throws {
        let dir = try TemporaryDirectory()
        let journal = try #require(LedgerJournal(databasePath: dir.path()))
        // The first segment's name is taken by a directory: its open fails, as a full disk would.
        try FileManager.default.createDirectory(atPath: journal.base + ".1", withIntermediateDirectories: false)
        let queue = GroupCommitQueue(maxBatch: 10)
        let results = Locked<[Bool]>([])
        _ = journal.stage(sampleEntry(1)) { result in
            results.withLock { $0.append((try? result.get()) != nil) }
        }
        journal.write(into: queue)
        #expect(results.current.isEmpty, "not answered: its row is nowhere yet")
        var batch: [GroupCommitQueue.Pending] = []
        #expect(queue.takeBatch(into: &batch) && batch.map(\.entry) == [sampleEntry(1)])
        batch[0].onCommit(.success(()))
        #expect(results.current == [true], "answered by its commit")
        journal.finish()
    }

    @Test func stagingAfterCloseFails() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        writer.close()
        let result = Locked<Result<Void, LedgerError>?>(nil)
        #expect(!writer.stage(sampleEntry(1)) { r in result.withLock { $0 = r } })
        #expect(result.current.map { if case .failure(.closed) = $0 { true } else { false } } == true)
    }

    /// The room a burst grew the journal's encoding buffer and the writer's queue to goes when
    /// the writer is idle (`releaseRoom`), not at the next small batch; room a steady pass uses
    /// stays, and so does a queue that holds rows.
    @Test func theRoomABurstGrewGoesWhenIdle() throws {
        let dir = try TemporaryDirectory()
        let journal = try #require(LedgerJournal(databasePath: dir.path()))
        let queue = GroupCommitQueue(maxBatch: 4_096)
        for n in 0..<1_000 { _ = journal.stage(sampleEntry(n)) { _ in } }
        journal.write(into: queue)
        #expect(journal.encodingCapacity > 64 << 10)
        #expect(queue.room >= 1_000)
        queue.releaseRoom(above: 256)
        #expect(queue.room >= 1_000, "rows queued: kept")
        var batch: [GroupCommitQueue.Pending] = []
        #expect(queue.takeBatch(into: &batch) && batch.count == 1_000)
        for pending in batch { pending.onCommit(.success(())) }
        // As the writer does: the batch keeps its room (a batch as large), and the next batch
        // swaps it into the queue.
        batch.removeAll(keepingRoomAbove: 256)
        for n in 1_000..<2_000 { _ = journal.stage(sampleEntry(n)) { _ in } }
        journal.write(into: queue)
        #expect(queue.takeBatch(into: &batch))
        for pending in batch { pending.onCommit(.success(())) }
        #expect(queue.room >= 1_000)
        journal.releaseRoom()
        queue.releaseRoom(above: 256)
        #expect(journal.encodingCapacity == 0)
        #expect(queue.room == 0)
        // A steady pass's room stays.
        for n in 2_000..<2_050 { _ = journal.stage(sampleEntry(n)) { _ in } }
        journal.write(into: queue)
        let steady = journal.encodingCapacity
        #expect(steady > 0 && steady <= 64 << 10)
        queue.releaseRoom(above: 256)
        journal.releaseRoom()
        #expect(journal.encodingCapacity == steady)
        #expect(queue.room >= 50)
        journal.finish()
    }
}
