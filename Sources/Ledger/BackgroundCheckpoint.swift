import CSQLite
import Foundation

/// Checkpoints the ledger's WAL on a thread and connection of its own, so that a commit arriving
/// meanwhile is not held behind the checkpoint's fsyncs (milliseconds here): run by the writer
/// between two calls at one client connection, that wait was the p99 (4.6 ms with the ledger,
/// 0.8 ms without). PASSIVE: it never blocks the writer or a reader; once a checkpoint has copied
/// the whole WAL, the writer's next commit starts the WAL over from its beginning.
final class BackgroundCheckpoint: @unchecked Sendable {
    /// What a finished checkpoint saw: the WAL's frames, and how many of them are now copied
    /// into the database. Commits go on during a checkpoint, so under load it ends behind.
    struct Outcome: Equatable {
        var walFrames: Int32
        var copiedFrames: Int32
        /// Files the pass synced itself (`syncFiles`): the database and the WAL, once any frame
        /// of the WAL is in the database (SQLite reports the total copied, not the pass's own).
        var syncedFiles = 0
    }

    private let connection: SQLiteConnection
    /// Touched by the checkpoint thread only (and by `close` once it stopped).
    private let wal: ResidentWAL

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var requested = false
    private var running = false
    private var stopping = false
    private var stopped = false
    private var outcome: Outcome?
    /// A sync of ours failed: no more passes (see `run`).
    private var failed = false

    /// Opens its own connection to the ledger at `path` (already created and in WAL mode).
    init(path: String) throws {
        connection = try SQLiteConnection(path: path, mode: .readWrite, busyTimeoutMillis: 0)
        wal = ResidentWAL(databasePath: path)
        // A connection that has read nothing yet has not opened the WAL, and its checkpoint
        // would silently do nothing.
        try connection.execute("SELECT count(*) FROM sqlite_master")
        // Holds the thread's only strong reference until `close()` ends `run`.
        let thread = Thread(named: "tokenctl-ckpt", priority: .catchesUp) { [self] in run() }
        thread.start()
    }

    /// Starts a checkpoint unless one is asked for or running; false then (ask again later).
    func request() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !requested && !running && !stopping && !failed else { return false }
        requested = true
        condition.signal()
        return true
    }

    /// The outcome of the checkpoint finished since the last call, if any (each is taken once).
    func takeOutcome() -> Outcome? {
        condition.lock()
        defer { condition.unlock() }
        defer { outcome = nil }
        return outcome
    }

    /// Waits for a running checkpoint and closes the connection (before the writer's, so the
    /// writer's connection is the last one and removes the WAL).
    func close() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !stopped { condition.wait() }
        condition.unlock()
        wal.close()
        connection.close()
    }

    private func run() {
        condition.lock()
        while true {
            while !requested && !stopping { condition.wait() }
            if stopping { break }
            requested = false
            running = true
            condition.unlock()
            var walFrames: Int32 = -1
            var copiedFrames: Int32 = -1
            let rc = sqlite3_wal_checkpoint_v2(connection.handle, nil, SQLITE_CHECKPOINT_PASSIVE, &walFrames, &copiedFrames)
            let synced = rc == SQLITE_OK && copiedFrames > 0 ? syncFiles() : 0
            wal.refresh()
            condition.lock()
            running = false
            // A failed sync has reported a writeback error to this connection's file only (Linux
            // reports it once per open file): SQLite's own sync in a later pass here could then
            // succeed and let the WAL start over with pages not on disk. The writer's own
            // checkpoints, through its file, still see the error; they alone run from now on.
            if synced < 0 { failed = true }
            outcome = rc == SQLITE_OK && walFrames >= 0 && synced >= 0
                ? Outcome(walFrames: walFrames, copiedFrames: copiedFrames, syncedFiles: synced) : nil
        }
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// A pass that ends behind the commits copies pages into the database without syncing it
    /// (SQLite syncs the database only when it copied the whole WAL), so the writer's catch-up,
    /// which holds every commit, would sync all the pass copied: tens of MB of scattered pages.
    /// Synced here, beside the commits, the catch-up's syncs cover only its own few frames.
    /// Returns how many of the two files it synced, or -1 if a sync failed.
    private func syncFiles() -> Int {
        var synced = 0
        for control in [SQLITE_FCNTL_FILE_POINTER, SQLITE_FCNTL_JOURNAL_POINTER] {
            var file: UnsafeMutablePointer<sqlite3_file>?
            guard sqlite3_file_control(connection.handle, "main", control, &file) == SQLITE_OK,
                  let file, let sync = file.pointee.pMethods?.pointee.xSync else { continue }
            guard sync(file, SQLITE_SYNC_NORMAL) == SQLITE_OK else { return -1 }
            synced += 1
        }
        return synced
    }
}
