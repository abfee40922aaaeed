import Foundation
import LedgerTestSupport
import Testing
@testable import Ledger

/// The checkpoint thread's pass, beside an open writer.
@Suite struct BackgroundCheckpointTests {
    /// Runs one pass and returns what it saw.
    static func pass(_ checkpoint: BackgroundCheckpoint) throws -> BackgroundCheckpoint.Outcome {
        #expect(checkpoint.request())
        let deadline = ContinuousClock.now + .seconds(10)
        var outcome = checkpoint.takeOutcome()
        while outcome == nil && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.005)
            outcome = checkpoint.takeOutcome()
        }
        return try #require(outcome, "the pass ended")
    }

    /// A pass syncs the database and the WAL itself, so that the writer's catch-up, which holds
    /// every commit, has only its own few frames to sync. After it the WAL's pages are mapped
    /// (`ResidentWAL`): reclaim that takes only unmapped page cache, as `POSIX_FADV_DONTNEED`
    /// does, leaves them, so that the commits that write over them next do not read them back
    /// inside their `pwrite`. Unmapped, the synced WAL's clean pages would go.
    @Test func aPassThatCopiedFramesSyncsTheDatabaseAndTheWal() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        defer { writer.close() }
        // 500 calls stay in the WAL: far below the writer's own checkpoint threshold.
        #expect(appendAll((0..<500).map { sampleEntry($0) }, to: writer).isEmpty)
        let checkpoint = try BackgroundCheckpoint(path: dir.path())
        defer { checkpoint.close() }
        let outcome = try Self.pass(checkpoint)
        #expect(outcome.copiedFrames > 0 && outcome.copiedFrames == outcome.walFrames)
        #expect(outcome.syncedFiles == 2)
        #if os(Linux)
        let fd = open(dir.path() + "-wal", O_RDONLY)
        try #require(fd >= 0)
        defer { close(fd) }
        #expect(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0)
        #expect(try Self.cachedShare(of: fd) == 1)
        #endif
    }

    /// The case the syncs are for: a pass that ends behind the WAL (here held back by a reader's
    /// snapshot; under load, by commits made during the pass), after which SQLite does not sync
    /// the database.
    @Test func aPassThatEndedBehindSyncsTheDatabaseAndTheWal() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        defer { writer.close() }
        #expect(appendAll((0..<200).map { sampleEntry($0) }, to: writer).isEmpty)
        let reader = try SQLiteConnection(path: dir.path())
        try reader.execute("BEGIN")
        _ = try reader.scalarInt("SELECT count(*) FROM calls")
        #expect(appendAll((200..<500).map { sampleEntry($0) }, to: writer).isEmpty)
        let checkpoint = try BackgroundCheckpoint(path: dir.path())
        defer { checkpoint.close() }
        let outcome = try Self.pass(checkpoint)
        #expect(outcome.copiedFrames > 0 && outcome.copiedFrames < outcome.walFrames)
        #expect(outcome.syncedFiles == 2)
        try reader.execute("COMMIT")
        reader.close()
    }

    #if os(Linux)
    /// The share of the file's pages in the page cache (`mincore` over a mapping of its own).
    private static func cachedShare(of fd: Int32) throws -> Double {
        var info = stat()
        try #require(fstat(fd, &info) == 0 && info.st_size > 0)
        let size = Int(info.st_size)
        let map = try #require(mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0))
        try #require(map != MAP_FAILED)
        defer { munmap(map, size) }
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        var resident = [UInt8](repeating: 0, count: (size + pageSize - 1) / pageSize)
        try #require(mincore(map, size, &resident) == 0)
        return Double(resident.filter { $0 & 1 == 1 }.count) / Double(resident.count)
    }
    #endif
}
