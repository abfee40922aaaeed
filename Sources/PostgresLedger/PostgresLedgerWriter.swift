import Foundation
import Ledger
import PostgresNIO

/// The PostgreSQL ledger's single writer per process, with the semantics of SQLite's
/// `LedgerWriter`: one dedicated thread drains everything queued into ONE transaction per batch
/// (group commit: one multi-row `INSERT … SELECT FROM unnest(…)` round trip, then COMMIT), and
/// only then runs the rows' callbacks, in append order (invariant 1).
///
/// Failures: a failed transaction is rolled back and retried with backoff (reconnecting if the
/// connection broke), keeping its rows. A row whose (id, started_at) already exists is failed
/// alone (`isConstraintViolation`), the rest of its batch commits; on a retry such a row counts
/// as committed, since the attempt that failed may have committed before the answer was lost.
/// Closing while commits still fail retries `closeRetries` times, then fails the remaining rows.
///
/// A row PostgreSQL cannot store (a data error, SQLSTATE class 22, or a value too big for an
/// index, 54000) would fail its batch on every retry: the batch is split and its halves written
/// on their own, down to the offending row, which alone fails; the others commit. (Text values
/// lose their NUL characters first, see `PostgresCallRow.storable`, so none arrives that way.)
///
/// A statement not answered within `answerTimeout` (a hung server or network) closes the
/// connection and counts as a failed attempt: the retry reconnects, and `close()` stays bounded.
///
/// Options: `LedgerWriter.Options`' batch, retry and hook fields apply; the SQLite-only ones
/// (busy timeout, checkpoints, rollups) are ignored: this ledger keeps no rollups (see the reader).
public final class PostgresLedgerWriter: LedgerSink, @unchecked Sendable {
    private typealias Pending = GroupCommitQueue.Pending

    public let location: PostgresLocation
    private let options: LedgerWriter.Options
    private let queue: GroupCommitQueue

    // Touched only by the writer thread once it runs.
    private let session: PostgresSession
    /// Calls starting before this have a monthly partition; later ones make the writer create more.
    private var partitionedUntil: Int64
    private var nextPartitionAttempt = ContinuousClock.now

    /// Connects, migrates and creates the partitions around now, then starts the writer thread.
    /// Migrating has no time limit; the writer's statements then have `answerTimeout` each.
    public init(location: PostgresLocation, options: LedgerWriter.Options = LedgerWriter.Options(),
                answerTimeout: Duration = .seconds(30)) throws {
        self.location = location
        self.options = options
        queue = GroupCommitQueue(maxBatch: options.maxBatch)
        session = try PostgresSession(location)
        let now = UnixTime.nowMicros()
        do {
            try PostgresSchema.prepare(session, now: now)
        } catch {
            session.close()
            throw error
        }
        session.answerTimeout = answerTimeout
        partitionedUntil = UTCMonth(containing: now).advanced(by: 3).startMicros
        // Weak: once `run` returns, nothing but the owner keeps the writer alive.
        let thread = Thread(named: "tokenctl-pg", priority: .standard) { [weak self] in self?.run() }
        queue.writerStarted(thread)
        thread.start()
    }

    public func append(_ entry: LedgerEntry, onCommit: @escaping LedgerWriter.Completion) {
        if !queue.append(entry, onCommit: onCommit) { onCommit(.failure(.closed)) }
    }

    public var backlog: Int { queue.backlog }

    public func flush() { queue.flush() }

    public func flush(timeout: Duration) -> Bool { queue.flush(deadline: .now + timeout) }

    public func close() { queue.close() }

    // MARK: Writer thread

    private func run() {
        let clock = ContinuousClock()
        var batch: [Pending] = []
        while queue.nextBatch(into: &batch) {
            defer { batch.removeAll(keepingRoomAbove: 256) }
            let started = clock.now
            switch commitWithRetry(batch) {
            case .committed(let rejected):
                options.onBatchCommitted?(batch.count - rejected.count, clock.now - started)
                for (index, pending) in batch.enumerated() {
                    pending.onCommit(rejected[index].map { .failure($0) } ?? .success(()))
                }
                queue.settle(batch.count)
            case .failed(let error):
                // Only reached while closing: nothing more will commit, so say so to everyone.
                for pending in batch { pending.onCommit(.failure(error)) }
                queue.settle(batch.count)
                queue.failRemaining(error)
            }
        }
        session.close()
        queue.finished()
    }

    private enum BatchResult {
        case committed(rejected: [Int: LedgerError])
        case failed(LedgerError)
    }

    private func commitWithRetry(_ batch: [Pending]) -> BatchResult {
        var attempt = 0
        while true {
            let result = write(batch, retrying: attempt > 0)
            guard case .failed(let error) = result else { return result }
            attempt += 1
            options.onCommitFailure?(error, attempt)
            let closing = queue.isClosing
            if closing && attempt >= options.closeRetries { return result }
            queue.backOff(millis: options.retryDelayMillis(attempt: attempt), closing: closing)
        }
    }

    private func write(_ batch: [Pending], retrying: Bool) -> BatchResult {
        do {
            try ensurePartitions(for: batch)
            return .committed(rejected: try insert(batch[...], retrying: retrying))
        } catch {
            return .failed(PostgresSession.ledgerError(error, context: "commit \(batch.count) calls"))
        }
    }

    /// Inserts `rows` in one statement, so one transaction without BEGIN and COMMIT (two round
    /// trips fewer per batch), and returns the refused ones, by index in the batch: a duplicate
    /// (unless `retrying`), or a row PostgreSQL cannot store. On such a data error the statement
    /// fails whole, so the rows are split in halves, each written on its own, until the
    /// offending row stands alone. Any other error fails the attempt.
    private func insert(_ rows: ArraySlice<Pending>, retrying: Bool) throws -> [Int: LedgerError] {
        let inserted: [PostgresRow]
        do {
            inserted = try session.query(PostgresCallRow.insert(rows.map(\.entry)), context: "insert \(rows.count) calls")
        } catch let error as LedgerError where error.isUnstorableValue {
            if rows.count == 1 { return [rows.startIndex: error] }
            let middle = rows.startIndex + rows.count / 2
            let first = try insert(rows[..<middle], retrying: retrying)
            return first.merging(try insert(rows[middle...], retrying: retrying)) { kept, _ in kept }
        }
        var insertedIds: [String: Int] = [:]
        for row in inserted { insertedIds[try row.makeRandomAccess().value(0, as: String.self), default: 0] += 1 }
        var rejected: [Int: LedgerError] = [:]
        for (index, pending) in zip(rows.indices, rows) {
            let id = PostgresCallRow.storable(pending.entry.id)  // as RETURNING spells it
            if let count = insertedIds[id], count > 0 {
                insertedIds[id] = count - 1
            } else if !retrying {
                rejected[index] = .postgres(state: "23505", message: "call \(pending.entry.id) is already in the ledger",
                                            context: "insert call")
            }
        }
        return rejected
    }

    /// Creates the partitions for the months of the batch's calls and the two after, when a call
    /// reaches past those already made (once a month, or for a call with a far-off clock).
    private func ensurePartitions(for batch: [Pending]) throws {
        guard let latest = batch.lazy.map(\.entry.startedAt).max() else { return }
        let month = UTCMonth(containing: latest)
        // Made a month before they are needed: the DDL waits for every lock on `calls` (a long
        // report's read) and inserts queue behind it, so it must not sit on a batch's path. A
        // pre-creation that times out is tried again a minute later; only a batch with calls
        // past the partitions made waits for it (then those calls could not be placed at all).
        let needed = latest >= partitionedUntil
        guard needed || (month.advanced(by: 2).startMicros >= partitionedUntil && ContinuousClock.now >= nextPartitionAttempt)
        else { return }
        // A clock years ahead would make a partition per month in between: its calls go to the default one.
        guard month.index - UTCMonth(containing: partitionedUntil).index <= 12 else { return }
        do {
            try PostgresSchema.ensurePartitions(session, from: UTCMonth(containing: partitionedUntil),
                                                through: month.advanced(by: 2), lockTimeoutMillis: needed ? nil : 2_000)
            partitionedUntil = month.advanced(by: 3).startMicros
        } catch where !needed {
            nextPartitionAttempt = ContinuousClock.now + .seconds(60)
        }
    }
}

extension LedgerError {
    /// PostgreSQL refused a value of the row itself (SQLSTATE class 22, data exception, or
    /// 54000, e.g. a key too big for its index): retrying the same row cannot help.
    var isUnstorableValue: Bool {
        guard case .postgres(let state, _, _) = self else { return false }
        return state.hasPrefix("22") || state == "54000"
    }
}
