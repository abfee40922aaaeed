import CSQLite
import Foundation
import LedgerTestSupport
import Testing
@testable import Ledger

/// The writer's VFS (`SQLiteConnection.walFramesVFS`) writes each WAL frame, header and page, in
/// one write with the other frames of its commit; the files must be what SQLite's default VFS
/// would have written.
@Suite struct WalFramesTests {
    /// The database and its WAL as they are on disk now, copied while their connection is open
    /// (a crash would leave them so); opened, SQLite rebuilds the WAL's index from the frames.
    static func copy(of dir: TemporaryDirectory) throws -> TemporaryDirectory {
        let copy = try TemporaryDirectory()
        for suffix in ["", "-wal"] {
            try FileManager.default.copyItem(atPath: dir.path() + suffix, toPath: copy.path() + suffix)
        }
        return copy
    }

    /// A connection through the writer's VFS to a new WAL database with one table `t` of blobs.
    static func blobTable(in dir: TemporaryDirectory, cacheSize: Int? = nil) throws -> SQLiteConnection {
        let vfs: String = try #require(SQLiteConnection.walFramesVFS, "registered")
        let connection = try SQLiteConnection(path: dir.path(), vfs: vfs)
        try connection.execute("""
            PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \(cacheSize.map { "PRAGMA cache_size = \($0);" } ?? "")
            CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
            """)
        return connection
    }

    /// The size of the WAL file of `dir`'s database.
    static func walBytes(of dir: TemporaryDirectory) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: dir.path() + "-wal")[.size] as? Int ?? 0
    }

    /// A copy of the ledger taken while its writer is open, its calls still in the WAL only, is
    /// opened without the WAL's index: SQLite rebuilds it from the frames, accepting each only
    /// with its header's checksum chain intact. Every committed call must be there.
    @Test func aCopyOfTheWalRecoversEveryCommittedCall() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        defer { writer.close() }
        #expect(appendAll((0..<500).map { sampleEntry($0) }, to: writer).isEmpty)
        let copy = try Self.copy(of: dir)
        let walBytes = try Self.walBytes(of: copy)
        #expect(walBytes > 50 * 4_120, "the calls are in the WAL, not yet checkpointed: \(walBytes) bytes")
        #expect(try LedgerReader(path: copy.path()).count() == 500)
    }

    @Test func itIsRegisteredAndConnectionsOpenWithIt() throws {
        let vfs = try #require(SQLiteConnection.walFramesVFS, "registered")
        let dir = try TemporaryDirectory()
        let connection = try SQLiteConnection(path: dir.path(), vfs: vfs)
        var used: UnsafeMutablePointer<sqlite3_vfs>?
        #expect(sqlite3_file_control(connection.handle, "main", SQLITE_FCNTL_VFS_POINTER, &used) == SQLITE_OK)
        #expect(used.map { String(cString: $0.pointee.zName) } == vfs)
    }

    /// SQLite calls a file's later methods (shared memory, memory mapping) only if its version
    /// has them: the wrapper must claim the version of the file it wraps, no more.
    @Test func theWrappedFilesClaimTheVersionOfTheFilesTheyWrap() throws {
        func methodsVersions(vfs: String?) throws -> [Int32?] {
            let dir = try TemporaryDirectory()
            let connection = try SQLiteConnection(path: dir.path(), vfs: vfs)
            try connection.execute("PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1)")
            return [SQLITE_FCNTL_FILE_POINTER, SQLITE_FCNTL_JOURNAL_POINTER].map { control in
                var file: UnsafeMutablePointer<sqlite3_file>?
                #expect(sqlite3_file_control(connection.handle, "main", control, &file) == SQLITE_OK)
                return file?.pointee.pMethods?.pointee.iVersion
            }
        }
        let vfs: String = try #require(SQLiteConnection.walFramesVFS, "registered")
        let wrapped = try methodsVersions(vfs: vfs)
        #expect(!wrapped.contains(nil))
        #expect(wrapped == (try methodsVersions(vfs: nil)))
    }

    /// A transaction larger than the cache writes frames before COMMIT, and overwrites some of
    /// them in place later; at COMMIT SQLite then rewrites the headers from the first overwritten
    /// frame on (a read, then a 24-byte write, frame by frame). The last of those headers is the
    /// commit frame's, and no page follows it: it must reach the file at once, or a crash (or
    /// another process's recovery) would cut the committed transaction off the WAL.
    @Test func headersRewrittenAtCommitReachTheFile() throws {
        let dir = try TemporaryDirectory()
        let connection = try Self.blobTable(in: dir, cacheSize: 8)
        try connection.execute("BEGIN")
        for n in 0..<400 { try connection.execute("INSERT INTO t VALUES (\(n), zeroblob(500))") }
        // Pages spilled to the WAL early in the transaction, written again.
        try connection.execute("UPDATE t SET body = zeroblob(400) WHERE id < 20")
        try connection.execute("COMMIT")
        let copy = try Self.copy(of: dir)
        let recovered = try SQLiteConnection(path: copy.path())
        #expect(try recovered.scalarInt("SELECT count(*) FROM t") == 400)
        #expect(try recovered.scalarInt("SELECT count(*) FROM t WHERE length(body) = 400") == 20)
        connection.close()
    }

    /// A commit's frames go to the file in runs of at most 31 frames; a transaction of several
    /// runs, and commits of one page each between them, must all be in the WAL once each COMMIT
    /// returns (a copy taken then recovers them).
    @Test func everyFrameOfACommitIsInTheFileWhenItReturns() throws {
        let dir = try TemporaryDirectory()
        let connection = try Self.blobTable(in: dir)
        try connection.execute("BEGIN")
        for n in 0..<300 { try connection.execute("INSERT INTO t VALUES (\(n), zeroblob(3000))") }
        try connection.execute("COMMIT")
        for n in 300..<305 { try connection.execute("INSERT INTO t VALUES (\(n), zeroblob(10))") }
        let copy = try Self.copy(of: dir)
        let walBytes = try Self.walBytes(of: copy)
        #expect(walBytes > 200 * 4_120, "the rows are in the WAL, not yet checkpointed: \(walBytes) bytes")
        let recovered = try SQLiteConnection(path: copy.path())
        #expect(try recovered.scalarInt("SELECT count(*) FROM t") == 305)
        #expect(try recovered.scalarInt("SELECT sum(length(body)) FROM t") == 300 * 3_000 + 5 * 10)
        connection.close()
    }

    /// A transaction larger than the cache spills frames to the WAL before COMMIT, and some may
    /// still wait in the VFS's run. Rolled back, they must never reach the file: another
    /// connection may meanwhile commit frames at the same offsets, and writing them then would
    /// overwrite that commit.
    @Test func framesOfARolledBackTransactionNeverOverwriteAnotherCommit() throws {
        let dir = try TemporaryDirectory()
        let writer = try Self.blobTable(in: dir, cacheSize: 8)
        try writer.execute("INSERT INTO t VALUES (0, zeroblob(10))")
        try writer.execute("PRAGMA wal_checkpoint")
        try writer.execute("BEGIN")
        for n in 1..<200 { try writer.execute("INSERT INTO t VALUES (\(n), randomblob(500))") }
        try writer.execute("ROLLBACK")
        let other = try SQLiteConnection(path: dir.path())
        try other.execute("CREATE TABLE u (body BLOB); INSERT INTO u SELECT randomblob(300) FROM t, (SELECT 1 UNION SELECT 2)")
        other.close()
        // The writer's next calls on its WAL: a read, then a commit of its own.
        #expect(try writer.scalarInt("SELECT count(*) FROM t") == 1)
        try writer.execute("INSERT INTO t VALUES (1, zeroblob(10))")
        let check = try SQLiteConnection(path: dir.path())
        let integrity = try check.prepare("PRAGMA integrity_check")
        #expect(try integrity.step() && integrity.string(at: 0) == "ok")
        integrity.finalize()
        #expect(try check.scalarInt("SELECT count(*) FROM u") == 2)
        #expect(try check.scalarInt("SELECT count(*) FROM t") == 2)
        check.close()
        writer.close()
    }
}
