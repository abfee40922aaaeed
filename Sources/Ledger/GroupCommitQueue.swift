import Foundation

/// The queue between the threads that append ledger rows and a writer's one thread, shared by
/// SQLite's `LedgerWriter` and the PostgreSQL writer: appends from any thread, batches taken
/// whole by the writer (group commit), callbacks counted as settled, `flush` and `close`.
///
/// Threading: `append`, `backlog`, `flush` and `close` from any thread but the writer's; the rest
/// from the writer thread. Everything shared is guarded by one condition.
public final class GroupCommitQueue: @unchecked Sendable {
    public struct Pending: Sendable {
        public let entry: LedgerEntry
        public let onCommit: LedgerWriter.Completion
    }

    private let maxBatch: Int

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [Pending] = []
    private var accepted: UInt64 = 0
    /// Rows whose callback has run (committed or failed).
    private var settled: UInt64 = 0
    private var flushWaiters = 0
    private var stopping = false
    private var stopped = false
    private var writer: Thread?
    /// Something asked for the writer thread: appended rows, a flush.
    private var writerWanted = false
    /// A queued row's caller waits for its commit (it is in no journal): the writer does not linger.
    private var callerWaits = false
    /// When an idle writer thread has work of its own (rollups due), if ever.
    private var wakeAt: ContinuousClock.Instant?

    // The writer thread.
    /// Rows taken off the queue in one go when it held more than a batch, served from `backlogHead`.
    private var backlogTaken: [Pending] = []
    private var backlogHead = 0

    public init(maxBatch: Int) {
        self.maxBatch = max(1, maxBatch)
    }

    /// Names the writer's thread, so that `flush` and `close` from one of its callbacks, which
    /// would wait for themselves, stop with a clear message instead.
    public func writerStarted(_ thread: Thread) {
        condition.lock()
        writer = thread
        condition.unlock()
    }

    /// Queues `entry`, whose caller waits for its commit; false (nothing queued) once closing:
    /// the caller fails it.
    public func append(_ entry: LedgerEntry, onCommit: @escaping LedgerWriter.Completion) -> Bool {
        append(contentsOf: CollectionOfOne(Pending(entry: entry, onCommit: onCommit)), callersWait: true)
    }

    /// Queues `rows`; `callersWait`: false for rows a journal holds already (`LedgerJournal`),
    /// which the writer may let wait for others (`linger`). Wakes the writer if it may sleep.
    /// False (nothing queued) once closing.
    public func append<Rows: Sequence<Pending>>(contentsOf rows: Rows, callersWait: Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { return false }
        let before = queue.count
        queue.append(contentsOf: rows)
        accepted += UInt64(queue.count - before)
        // Only an empty queue can have a sleeping writer: wake it once per batch, not per row.
        if before == 0 && !queue.isEmpty {
            writerWanted = true
            condition.broadcast()
        }
        if callersWait && !callerWaits {
            callerWaits = true
            condition.broadcast()
        }
        return true
    }

    /// Rows queued and not yet settled.
    public var backlog: Int {
        condition.lock()
        defer { condition.unlock() }
        return Int(accepted - settled)
    }

    /// Blocks until every row appended before this call is settled, or `deadline` passes (if
    /// any); false if it passed first (e.g. while commits fail).
    @discardableResult
    public func flush(deadline: ContinuousClock.Instant? = nil) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        precondition(Thread.current !== writer, "flush() from a ledger callback would deadlock")
        let target = accepted
        // Cuts the writer's linger short.
        if !queue.isEmpty {
            writerWanted = true
            condition.broadcast()
        }
        flushWaiters += 1
        defer { flushWaiters -= 1 }
        while settled < target && !stopped {
            guard let deadline else {
                condition.wait()
                continue
            }
            guard wait(until: deadline) else { return false }
        }
        return true
    }

    /// Refuses new rows and waits until the writer has drained the rest and said `finished`.
    public func close() {
        condition.lock()
        precondition(Thread.current !== writer, "close() from a ledger callback would deadlock")
        stopping = true
        condition.broadcast()
        while !stopped { condition.wait() }
        condition.unlock()
    }

    // MARK: Writer thread

    public var isClosing: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }

    /// Nothing waits to be written: a good moment for housekeeping such as a checkpoint.
    public var isIdle: Bool {
        condition.lock()
        defer { condition.unlock() }
        return queue.isEmpty && backlogHead == backlogTaken.count
    }

    /// When the writer thread, idle, has work of its own; an earlier instant than it sleeps
    /// towards wakes it.
    public func setWakeAt(_ instant: ContinuousClock.Instant?) {
        condition.lock()
        let earlier = instant.map { new in wakeAt.map { new < $0 } ?? true } ?? false
        wakeAt = instant
        if earlier { condition.broadcast() }
        condition.unlock()
    }

    /// Writer thread: sleeps until rows are appended, a `flush` asks for it or the `setWakeAt`
    /// instant passes. False once closing and nothing is queued.
    public func waitForWork() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !writerWanted && !stopping {
            guard let instant = wakeAt else { condition.wait(); continue }
            guard wait(until: instant) else { break }
        }
        writerWanted = false
        return !(stopping && queue.isEmpty)
    }

    /// Writer thread: waits until `deadline` for more rows to join the batch, unless a caller
    /// waits for a queued row's commit, a `flush` waits or the queue is closing.
    public func linger(until deadline: ContinuousClock.Instant) {
        condition.lock()
        defer { condition.unlock() }
        while !callerWaits && flushWaiters == 0 && !stopping {
            guard wait(until: deadline) else { break }
        }
    }

    /// Moves up to `maxBatch` rows into the empty `batch`; false when nothing is queued. Swaps
    /// buffers, so neither array reallocates in steady state; a queue longer than a batch is
    /// taken whole and served batch by batch from `backlogTaken` (not shifted down per batch,
    /// which would copy the whole backlog each time).
    public func takeBatch(into batch: inout [Pending]) -> Bool {
        if backlogHead < backlogTaken.count {
            let end = min(backlogHead + maxBatch, backlogTaken.count)
            batch.append(contentsOf: backlogTaken[backlogHead..<end])
            backlogHead = end
            return true
        }
        if !backlogTaken.isEmpty {
            backlogTaken.removeAll(keepingCapacity: false)
            backlogHead = 0
        }
        condition.lock()
        defer { condition.unlock() }
        if queue.isEmpty { return false }
        callerWaits = false
        if queue.count <= maxBatch {
            swap(&batch, &queue)
        } else {
            swap(&backlogTaken, &queue)
            batch.append(contentsOf: backlogTaken.prefix(maxBatch))
            backlogHead = maxBatch
        }
        return true
    }

    /// Writer thread, idle: drops the queue's room over `floor` rows, which only a burst grows
    /// it to (under load the writer is not idle). Kept while rows are queued.
    /// True if it dropped any.
    @discardableResult
    public func releaseRoom(above floor: Int) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard queue.isEmpty && queue.capacity > floor else { return false }
        queue = []
        return true
    }

    /// Rows the queue has room for (the writer, deciding whether a burst's room waits for it).
    package var room: Int {
        condition.lock()
        defer { condition.unlock() }
        return queue.capacity
    }

    /// A single writer thread's loop step, for a writer without housekeeping of its own: waits
    /// until it can take a batch of rows; false once closing and drained. (A wake-up with nothing
    /// queued, e.g. `flush` asking while this thread was committing, just waits again.)
    public func nextBatch(into batch: inout [Pending]) -> Bool {
        while !takeBatch(into: &batch) {
            guard waitForWork() else { return false }
        }
        return true
    }

    /// `count` callbacks have run.
    public func settle(_ count: Int) {
        condition.lock()
        settled += UInt64(count)
        if flushWaiters > 0 || stopping { condition.broadcast() }
        condition.unlock()
    }

    /// Nothing more will commit (closing while commits fail): every row still queued gets `error`.
    public func failRemaining(_ error: LedgerError) {
        condition.lock()
        let rest = backlogTaken[backlogHead...] + queue
        queue.removeAll()
        condition.unlock()
        backlogTaken.removeAll()
        backlogHead = 0
        for pending in rest { pending.onCommit(.failure(error)) }
        settle(rest.count)
    }

    /// Waits `millis` before the next attempt at a failed commit; cut short once if `close()`
    /// arrives meanwhile (`closing`: it had already), so closing is not held up by a long backoff.
    public func backOff(millis: Int, closing: Bool) {
        let deadline = Date(timeIntervalSinceNow: Double(millis) / 1_000)
        condition.lock()
        while Date() < deadline && (closing || !stopping) {
            _ = condition.wait(until: deadline)
        }
        condition.unlock()
    }

    /// The writer is done: `close()` returns, waiting `flush()`es give up.
    public func finished() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// Waits on `condition` (held) for a signal or `deadline`; false, without waiting, once
    /// `deadline` has passed.
    private func wait(until deadline: ContinuousClock.Instant) -> Bool {
        let left = deadline - .now
        guard left > .zero else { return false }
        let seconds = Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18
        _ = condition.wait(until: Date(timeIntervalSinceNow: seconds))
        return true
    }
}
