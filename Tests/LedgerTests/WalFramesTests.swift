import CSQLite
import Foundation
import LedgerTestSupport
import Testing
@testable import Ledger

/// The writer's VFS (`SQLiteConnection.walFramesVFS`) writes each WAL frame, header and page, in
/// one write; the files must be what SQLite's default VFS would have written.
@Suite struct WalFramesTests {
    /// A copy of the ledger taken while its writer is open, its calls still in the WAL only, is
    /// opened without the WAL's index: SQLite rebuilds it from the frames, accepting each only
    /// with its header's checksum chain intact. Every committed call must be there.
    @Test func aCopyOfTheWalRecoversEveryCommittedCall() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        defer { writer.close() }
        #expect(appendAll((0..<500).map { sampleEntry($0) }, to: writer).isEmpty)
        let copy = try TemporaryDirectory()
        for suffix in ["", "-wal"] {
            try FileManager.default.copyItem(atPath: dir.path() + suffix, toPath: copy.path() + suffix)
        }
        let walBytes = try FileManager.default.attributesOfItem(atPath: copy.path() + "-wal")[.size] as? Int ?? 0
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
}
