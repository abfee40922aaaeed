import CSQLite
import Foundation
import Synchronization

/// The single writer of the ledger: one dedicated thread drains everything queued into one
/// transaction (group commit), then tells each caller its row is durable.
///
/// Threading: `append` may be called from any thread; it only enqueues under a lock and wakes the
/// writer when the queue goes from empty to non-empty. An appended row's callback runs after its
/// transaction committed, on the writer thread, in append order; it must be quick and must not
/// call `flush` or `close` (hop to your own event loop instead).
///
/// Recorded before committed: `stage` queues a row for the ledger's journal (`LedgerJournal`), and
/// the caller then runs `recordStaged` on its own thread, e.g. once per event-loop pass for every
/// row staged in that pass: the rows go to the journal file in one `write`, their callbacks run
/// right away on that thread (`.success`: recorded), and the writer thread commits them to SQLite
/// behind, `commitLinger` after the first, in one transaction. An answer so waits about a
/// microsecond for its row instead of a commit (40 µs alone, milliseconds when a checkpoint holds
/// commits), and the writer commits fewer, larger transactions. `flush` waits for SQLite. Rows the
/// journal cannot take (a full disk) are appended instead: their callbacks wait for their commit.
/// The start replays the journals of gateways that are gone (`replayed`).
///
/// Failures: a failed transaction is rolled back and retried with backoff, keeping its rows; no
/// appended row's callback runs before it is committed (a journaled row's has run: its journal
/// keeps it meanwhile). A row rejected by a constraint (a duplicate call id) gets a failure
/// callback, since retrying cannot help; the rest of its batch commits. Only when
/// closing while commits still fail do the remaining rows get `.failure`. Call `close()` before
/// dropping the writer: its thread keeps it alive until then.
public final class LedgerWriter: @unchecked Sendable {
    public typealias Completion = @Sendable (Result<Void, LedgerError>) -> Void

    private typealias Pending = GroupCommitQueue.Pending

    public let path: String
    private let options: Options
    private let queue: GroupCommitQueue

    // Touched only by the writer thread once it runs (the connection's statements, the state
    // below, up to `batch`).
    private let connection: SQLiteConnection
    private let insert: Statement
    private let begin: Statement
    private let commit: Statement
    private let rollback: Statement
    private let markRetry: Statement
    private let dataVersion: Statement
    private let rollups: RollupStore
    private let retries: RetryTracker
    /// Rollup deltas of committed calls not yet in the cells (see `PendingRollups`).
    private let tail: PendingRollups
    /// `PRAGMA data_version` when the in-memory key ids and recent calls were loaded; another
    /// connection's commit changes it, and a rollback sets `stale`: either makes the next batch reload.
    private var seenDataVersion: Int64 = 0
    private var stale = false
    private let wal = WalProgress()
    private var checkpoints: CheckpointSchedule
    private let checkpointer: BackgroundCheckpoint
    /// The rollups' due instant last handed to the queue (the writer thread's wake-up).
    private var publishedRollupsDue: ContinuousClock.Instant?
    private var batch: [Pending] = []
    /// nil if its lock file could not be made: staged rows are then appended.
    private let journal: LedgerJournal?
    /// What the start replayed from the journals of gateways that were gone (`LedgerJournal`).
    public private(set) var replayed = JournalReplay()

    /// Opens (creating if needed) and migrates the ledger at `path`, then starts the writer thread.
    public init(path: String, options: Options = Options()) throws {
        self.path = path
        self.options = options
        checkpoints = CheckpointSchedule(pagesPerCheckpoint: options.checkpointPages)
        queue = GroupCommitQueue(maxBatch: options.maxBatch)
        connection = try SQLiteConnection(path: path, busyTimeoutMillis: options.busyTimeoutMillis,
                                          vfs: SQLiteConnection.walFramesVFS)
        try connection.configureForLedger()
        try Schema.migrate(connection)
        // After a burst, the WAL is cut back to this size when it restarts.
        try connection.execute("PRAGMA journal_size_limit = 67108864")
        // The pages each batch touches (the calls' indexes, the current rollup cells) stay in
        // memory instead of being re-read from the OS per batch (SQLite's default is 2 MB).
        try connection.execute("PRAGMA cache_size = -65536")
        insert = try connection.prepare(CallRow.insertSQL)
        begin = try connection.prepare("BEGIN IMMEDIATE")
        commit = try connection.prepare("COMMIT")
        rollback = try connection.prepare("ROLLBACK")
        markRetry = try connection.prepare("UPDATE calls SET retry = ?2 WHERE rowid = ?1")
        dataVersion = try connection.prepare("PRAGMA data_version")
        rollups = try RollupStore(connection: connection)
        retries = try RetryTracker(connection: connection, store: rollups)
        tail = try PendingRollups(connection: connection, store: rollups)
        // The first batch loads the tail (in its transaction, like every later reload).
        stale = true
        seenDataVersion = try Self.read(dataVersion)
        sqlite3_wal_hook(connection.handle, walHook, Unmanaged.passUnretained(wal).toOpaque())
        checkpointer = try BackgroundCheckpoint(path: path)
        journal = LedgerJournal(databasePath: path)

        // Weak: once `run` returns, nothing but the owner keeps the writer alive.
        let thread = Thread(named: "tokenctl-ledger", priority: .standard) { [weak self] in self?.run() }
        queue.writerStarted(thread)
        thread.start()
        // Before anything reads the ledger: the rows a stopped gateway had only in its journal.
        replayed = Self.replayJournals(of: path, into: queue)
    }

    /// Commits the rows of every orphaned journal, and removes the journal once all of them are
    /// in. Most of a journal is in SQLite already (its segment is removed only once full and
    /// committed): those rows are looked up by id and left out, since an insert refused by the
    /// unique id costs far more (a restart after a kill under load replayed a 4 MB segment,
    /// 14,456 rows of which 85 were missing, in about 950 ms that way). A row that arrives
    /// meanwhile is still refused by its id and counts as in. A row that started before a prune's
    /// date and is not in SQLite was committed, then pruned (a segment can span weeks): the
    /// rollups count it, so it is not inserted again. (`ledger prune` records the journals of
    /// stopped gateways first, so none was left unrecorded behind a prune.)
    private static func replayJournals(of path: String, into queue: GroupCommitQueue) -> JournalReplay {
        var total = JournalReplay()
        let orphans = LedgerJournal.orphans(of: path)
        guard !orphans.isEmpty else { return total }
        let lookup = try? SQLiteConnection(path: path, mode: .readWrite)
        let known = try? lookup?.prepare("SELECT 1 FROM calls WHERE id = ?1")
        let prunedBefore = lookup.flatMap { try? LedgerPrune.prunedBefore(on: $0) } ?? 0
        defer {
            known?.finalize()
            lookup?.close()
        }
        func isKnown(_ entry: LedgerEntry) -> Bool {
            if entry.startedAt < prunedBefore { return true }
            guard let known else { return false }
            defer { known.reset() }
            known.bind(entry.id, at: 1)
            return (try? known.step()) ?? false
        }
        for orphan in orphans {
            let missing = orphan.entries.filter { !isKnown($0) }
            let tally = InsertTally()
            _ = queue.append(contentsOf: missing.map { Pending(entry: $0, onCommit: tally.record) }, callersWait: true)
            queue.flush()
            let failed = tally.failed
            total.rows += tally.committed
            total.alreadyRecorded += orphan.entries.count - missing.count + tally.present
            total.failed += failed
            total.damagedBytes += orphan.damagedBytes
            total.unreadable += orphan.unreadable
            if failed == 0 && orphan.unreadable == 0 { orphan.remove() } else { orphan.release() }
        }
        return total
    }

    /// Records the rows that gateways stopped without closing the ledger at `path` left only in
    /// their journals (as a start of `serve` would), for tools that read or rewrite the ledger
    /// without a writer of their own (`ledger prune`, `ledger migrate`). Throws unless every
    /// row went in: those tools would then take the rows left behind for gone.
    @discardableResult
    public static func recordJournalsLeftBehind(at path: String) throws -> JournalReplay {
        guard LedgerJournal.anyLeftBehind(beside: path) else { return JournalReplay() }
        let writer = try LedgerWriter(path: path)  // its start replays them
        writer.close()
        try writer.replayed.requireWhole(beside: path)
        return writer.replayed
    }

    /// Queues `entry`; `onCommit` runs exactly once: `.success` after the row is committed, or a
    /// failure (see the type's notes). After `close()`, fails at once with `.closed` on the caller's thread.
    public func append(_ entry: LedgerEntry, onCommit: @escaping Completion) {
        if !queue.append(entry, onCommit: onCommit) { onCommit(.failure(.closed)) }
    }

    /// Queues `entry` for the journal (see the type's notes); `onCommit` runs once it is written
    /// there, or committed if the journal cannot take it. True when the caller must run
    /// `recordStaged()` soon on its own thread; false when one is already due for the rows staged
    /// before (this one goes with them). After `close()`, fails at once with `.closed` on the
    /// caller's thread and returns false.
    public func stage(_ entry: LedgerEntry, onCommit: @escaping Completion) -> Bool {
        guard let journal else {
            append(entry, onCommit: onCommit)
            return false
        }
        guard let first = journal.stage(entry, onCommit: onCommit) else {
            onCommit(.failure(.closed))
            return false
        }
        return first
    }

    /// Writes the staged rows to the journal and runs their callbacks, on the calling thread.
    public func recordStaged() {
        journal?.write(into: queue)
    }

    /// Rows queued and not yet settled: the ledger's backlog, for metrics.
    public var backlog: Int { queue.backlog }

    /// Blocks until every row appended before this call is committed and its callback has run.
    public func flush() {
        flush(deadline: nil)
    }

    public func flush(timeout: Duration) -> Bool {
        flush(deadline: .now + timeout)
    }

    /// Staged rows go to the journal first, so that the wait covers them too.
    @discardableResult
    private func flush(deadline: ContinuousClock.Instant?) -> Bool {
        journal?.write(into: queue)
        return queue.flush(deadline: deadline)
    }

    /// Commits everything queued, stops the thread and closes the database. Idempotent.
    public func close() {
        journal?.close(into: queue)
        queue.close()
        journal?.finish()
    }

    // MARK: Writer thread

    private func run() {
        while queue.waitForWork() {
            queue.linger(until: .now + options.commitLinger)
            commitQueued()
        }
        // One attempt: if it fails the calls stay in the tail, where reports and the next
        // writer find them.
        if tail.rows > 0 { _ = write([], flushRollups: true) }
        sqlite3_wal_hook(connection.handle, nil, nil)
        checkpointer.close()
        // Finalized first so the close is immediate: the last connection to close checkpoints
        // and removes the WAL.
        for statement in [insert, begin, commit, rollback, markRetry, dataVersion] { statement.finalize() }
        rollups.finalize()
        retries.finalize()
        tail.finalize()
        connection.close()
        queue.finished()
    }

    /// Commits every queued row, batch by batch, retrying a failed batch with backoff (see the
    /// type's notes), then sees to the rollups and the WAL.
    private func commitQueued() {
        let clock = ContinuousClock()
        var tookBatch = false
        while queue.takeBatch(into: &batch) {
            tookBatch = true
            let started = clock.now
            switch commitWithRetry(batch, flushRollups: rollupsDue(adding: batch.count)) {
            case .committed(let rejected):
                options.onBatchCommitted?(batch.count - rejected.count, clock.now - started)
                for (index, pending) in batch.enumerated() {
                    pending.onCommit(rejected[index].map { .failure($0) } ?? .success(()))
                }
                queue.settle(batch.count)
                // Between batches too: under sustained load the queue may never run dry.
                checkpointIfDue()
            case .failed(let error):
                // Only reached while closing: nothing more will commit, so say so to everyone.
                for pending in batch { pending.onCommit(.failure(error)) }
                queue.settle(batch.count)
                queue.failRemaining(error)
            }
            batch.removeAll(keepingRoomAbove: Self.batchRoom)
        }
        // Woken for the rollups alone (nothing queued).
        if rollupsDue(adding: 0), case .failed(let error) = commitWithRetry([], flushRollups: true) {
            queue.failRemaining(error)
        }
        if !tookBatch { releaseBurstRoom() }
        publishRollupsDue()
        checkpointIfDue()
    }

    /// Woken with no row queued (the rollups' timer, 2 s after a burst's rows at the latest): the
    /// room a burst grew the batch, the queue and the journal's buffer to goes now, not at the
    /// next small batch, which an idle gateway may not see for hours.
    private func releaseBurstRoom() {
        var released = queue.releaseRoom(above: Self.batchRoom)
        if batch.capacity > Self.batchRoom {
            batch = []
            released = true
        }
        journal?.releaseRoom()
        if released { burstRoomReleases.add(1, ordering: .relaxed) }
    }

    /// Times the writer gave a burst's room back (tests read it).
    package let burstRoomReleases = Atomic<Int>(0)

    /// Rows the writer's queue has room for (tests read it).
    package var queueRoom: Int { queue.room }

    private var holdsBurstRoom: Bool { batch.capacity > Self.batchRoom || queue.room > Self.batchRoom }

    /// Rows of room the batch and the queue keep between batches.
    private static let batchRoom = 256

    /// Tells the writer thread when the waiting calls' rollups are due, when that changed.
    private func publishRollupsDue() {
        // With no call waiting, a batch or queue holding a burst's room still wakes the writer
        // once, to give it back (`releaseBurstRoom`); looked at only then (the queue's room
        // takes its lock).
        let due = tail.waitingSince.map { $0 + options.rollupFlushInterval }
            ?? (holdsBurstRoom ? publishedRollupsDue ?? .now + options.rollupFlushInterval : nil)
        guard due != publishedRollupsDue else { return }
        publishedRollupsDue = due
        queue.setWakeAt(due)
    }

    private enum BatchResult {
        /// Committed; the indexes listed were rejected by a constraint and are not in the ledger.
        case committed(rejected: [Int: LedgerError])
        case failed(LedgerError)
    }

    private func commitWithRetry(_ batch: [Pending], flushRollups: Bool = false) -> BatchResult {
        var attempt = 0
        while true {
            let result = write(batch, flushRollups: flushRollups)
            guard case .failed(let error) = result else { return result }
            attempt += 1
            options.onCommitFailure?(error, attempt)
            let closing = queue.isClosing
            if closing && attempt >= options.closeRetries { return result }
            queue.backOff(millis: options.retryDelayMillis(attempt: attempt), closing: closing)
        }
    }

    /// Inserts the batch and, in the same transaction, its retry flags and, with `flushRollups`,
    /// the rollup cells: rejected rows never reach the rollups, and a rollback takes the rollups
    /// with it.
    private func write(_ batch: [Pending], flushRollups: Bool) -> BatchResult {
        do {
            try begin.run()
        } catch {
            return .failed(Self.ledgerError(error))
        }
        var rejected: [Int: LedgerError] = [:]
        do {
            let version = try Self.read(dataVersion)
            if stale || version != seenDataVersion {
                try rollups.reload()
                try retries.reload()
                try tail.reload()
                seenDataVersion = version
                stale = false
            }
            for (index, item) in batch.enumerated() {
                let entry = item.entry
                // A retry of a call in memory (the usual case) gets its flag with its row: an
                // UPDATE of the row after would rewrite it.
                let presumedRetry = retries.isRetry(entry) ?? false
                CallRow.bind(entry, to: insert)
                insert.bind(presumedRetry, at: CallRow.retryParameter)
                do {
                    try insert.runRebinding()
                } catch let error as LedgerError where error.isConstraintViolation {
                    // Only this statement was undone; the transaction and the other rows stand.
                    rejected[index] = error
                    continue
                }
                let rowid = sqlite3_last_insert_rowid(connection.handle)
                let keys = try rollups.ids(of: RollupKey(entry))
                let (isRetry, flagged) = try retries.record(entry, rowid: rowid, keys: keys)
                if isRetry != presumedRetry { try mark(rowid, retry: isRetry) }
                for call in flagged {
                    try mark(call.rowid, retry: true)
                    try tail.markRetry(call)
                }
                tail.add(RollupFacts(entry, retry: isRetry), keys: keys)
            }
            if flushRollups { try tail.flush() }
            try commit.run()
        } catch {
            try? rollback.run()
            stale = true
            return .failed(Self.ledgerError(error))
        }
        retries.prune()
        return .committed(rejected: rejected)
    }

    /// The calls waiting for the rollups (with `rows` more) are enough, or have waited long
    /// enough, to be added to the cells.
    private func rollupsDue(adding rows: Int) -> Bool {
        if tail.rows + rows >= options.rollupFlushRows { return true }
        return tail.waitingSince.map { ContinuousClock.now - $0 >= options.rollupFlushInterval } ?? false
    }

    private func mark(_ rowid: Int64, retry: Bool) throws {
        markRetry.bind(rowid, at: 1)
        markRetry.bind(retry, at: 2)
        try markRetry.run()
    }

    private static func read(_ pragma: Statement) throws -> Int64 {
        defer { pragma.reset() }
        return try pragma.step() ? pragma.int64(at: 0) : 0
    }

    private func checkpointIfDue() {
        let pages = wal.pages
        switch checkpoints.afterCommit(walPages: pages, outcome: checkpointer.takeOutcome(), queueIdle: queue.isIdle) {
        case .none:
            return
        case .requestBackground:
            guard checkpointer.request() else { return }
            checkpoints.requested(walPages: pages)
            options.onCheckpoint?(.background, pages, .zero)
        case .checkpoint(let kind):
            // Between two batches no commit appends, so this copies all that is left. It is
            // SQLITE_BUSY at once if the checkpoint thread is running one: asked again next commit.
            let start = ContinuousClock.now
            guard sqlite3_wal_checkpoint_v2(connection.handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil) != SQLITE_BUSY else {
                return
            }
            options.onCheckpoint?(kind, pages, ContinuousClock.now - start)
            checkpoints.checkpointed(walPages: pages)
        }
    }

    private static func ledgerError(_ error: any Error) -> LedgerError {
        error as? LedgerError ?? .invalidRow(String(describing: error))
    }
}

/// Pages in the WAL after the latest commit, reported by SQLite's WAL hook on the writer thread.
private final class WalProgress {
    var pages: Int32 = 0
}

/// Installing a WAL hook replaces SQLite's auto-checkpoint; `checkpointIfDue` takes its place.
private let walHook: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 = {
    context, _, _, pages in
    if let context { Unmanaged<WalProgress>.fromOpaque(context).takeUnretainedValue().pages = pages }
    return SQLITE_OK
}
