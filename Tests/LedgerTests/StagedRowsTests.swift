import Foundation
import Metering
import Testing
@testable import Ledger
import LedgerTestSupport

/// Rows staged by the gateway's event loops (`stage` + `recordStaged`): recorded on the caller's
/// thread (in the journal: `LedgerJournalTests`), committed by the writer thread behind them.
@Suite struct StagedRowsTests {
    @Test func stagedRowsAreRecordedOnTheCallersThreadInOrder() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        defer { writer.close() }
        let caller = pthread_self()
        let committed = Locked<[String]>([])
        let elsewhere = Locked(0)
        var mustRecord: [Bool] = []
        for n in 0..<3 {
            mustRecord.append(writer.stage(sampleEntry(n)) { result in
                if pthread_equal(pthread_self(), caller) == 0 { elsewhere.withLock { $0 += 1 } }
                if case .success = result { committed.withLock { $0.append("call-\(n)") } }
            })
        }
        #expect(mustRecord == [true, false, false], "one write asked for all rows staged before it")
        #expect(committed.current.isEmpty, "nothing is recorded before the caller writes")
        writer.recordStaged()
        #expect(committed.current == ["call-0", "call-1", "call-2"])
        #expect(elsewhere.current == 0, "callbacks ran on the caller's thread")
        writer.flush()
        #expect(try LedgerReader(path: dir.path()).count() == 3)
        #expect(writer.stage(sampleEntry(3)) { _ in }, "the queue ran dry: the next row asks again")
        writer.recordStaged()
    }

    /// 8 threads staging and writing, and appending through the writer thread, at once: every
    /// row committed once, one callback each, in each thread's order of staged rows and of
    /// appended ones (a staged row's callback comes at its write, an appended one's at its commit).
    @Test func stagedAndAppendedRowsFromManyThreads() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path(), options: .init(maxBatch: 64))
        let callbacks = Locked<[Int]>(Array(repeating: 0, count: 8_000))
        let order = Locked<[Int: [Int]]>([:])  // thread * 2 + 1 if appended
        let threads = 8
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for n in stride(from: thread, to: 8_000, by: threads) {
                let done: LedgerWriter.Completion = { result in
                    if case .success = result { order.withLock { $0[thread * 2 + (n % 5 == 0 ? 1 : 0), default: []].append(n) } }
                    callbacks.withLock { $0[n] += 1 }
                }
                if n % 5 == 0 {
                    writer.append(sampleEntry(n), onCommit: done)
                } else if writer.stage(sampleEntry(n), onCommit: done) {
                    writer.recordStaged()
                }
            }
        }
        writer.flush()
        #expect(callbacks.current.allSatisfy { $0 == 1 })
        for thread in 0..<threads {
            let mine = Array(stride(from: thread, to: 8_000, by: threads))
            #expect(order.current[thread * 2] == mine.filter { $0 % 5 != 0 }, "staged rows of thread \(thread)")
            #expect(order.current[thread * 2 + 1] == mine.filter { $0 % 5 == 0 }, "appended rows of thread \(thread)")
        }
        writer.close()
        #expect(try LedgerReader(path: dir.path()).count() == 8_000)
    }

    /// A caller that staged and never wrote: `flush` and `close` take its rows.
    @Test func rowsNobodyCommittedAreTakenByFlushAndClose() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        #expect(writer.stage(sampleEntry(1)) { _ in })
        writer.flush()
        #expect(try LedgerReader(path: dir.path()).count() == 1)
        _ = writer.stage(sampleEntry(2)) { _ in }
        writer.close()
        #expect(try LedgerReader(path: dir.path()).count() == 2)
        let result = Locked<Result<Void, LedgerError>?>(nil)
        #expect(!writer.stage(sampleEntry(3)) { r in result.withLock { $0 = r } })
        expectClosed(result.current)
        writer.recordStaged()
    }

    /// The writer thread adds staged calls to the rollup cells once they have waited
    /// `rollupFlushInterval`, with no further call to wake it.
    @Test func theWriterThreadAddsStagedCallsToTheRollups() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path(), options: .init(rollupFlushInterval: .milliseconds(50)))
        defer { writer.close() }
        for n in 0..<5 {
            if writer.stage(sampleEntry(n), onCommit: { _ in }) { writer.recordStaged() }
        }
        let probe = try SQLiteConnection(path: dir.path())
        let cells = "SELECT coalesce(sum(requests), 0) FROM rollup_hours"
        #expect(try probe.scalarInt(cells) == 0, "not at once")
        let deadline = ContinuousClock.now + .seconds(30)
        while try probe.scalarInt(cells) != 5 && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(try probe.scalarInt(cells) == 5)
    }

    /// While the WAL cannot start over, the writer asks for a background checkpoint once per
    /// `checkpointPages` written, not at every idle commit (that ran one every few calls, two
    /// fsyncs each), and past four times that the writer thread checkpoints itself. A reader
    /// holding an old snapshot keeps the WAL from starting over here, and holds every
    /// background checkpoint back, so the writer never catches up after one.
    @Test func backgroundCheckpointsAreAskedForOncePerThresholdAndTheWriterForcesOne() throws {
        let dir = try TemporaryDirectory()
        let started = Locked<[(LedgerWriter.Options.Checkpoint, Int32)]>([])
        let writer = try LedgerWriter(path: dir.path(), options: .init(
            commitLinger: .zero, checkpointPages: 20, onCheckpoint: { kind, pages, _ in started.withLock { $0.append((kind, pages)) } }))
        defer { writer.close() }
        let reader = try SQLiteConnection(path: dir.path())
        try reader.execute("BEGIN")
        _ = try reader.scalarInt("SELECT count(*) FROM calls")
        let commits = 150
        for n in 0..<commits {
            if writer.stage(sampleEntry(n), onCommit: { _ in }) { writer.recordStaged() }
            // Calls a little apart, as a server sees them: back to back on a loaded machine, the
            // checkpoint thread was still busy with the first request (refused ones are asked
            // again) and the writer thread not yet run for the forced one, so only one was asked.
            Thread.sleep(forTimeInterval: 0.002)
        }
        let deadline = ContinuousClock.now + .seconds(30)
        while !started.current.contains(where: { $0.0 == .forced }) && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.02)
        }
        let background = started.current.filter { $0.0 == .background }.map(\.1)
        #expect(background.count >= 2)
        #expect(background.count <= commits / 2, "one per 20 pages (a commit writes about 5), not one per commit")
        for (earlier, later) in zip(background, background.dropFirst()) {
            #expect(later - earlier >= 20 || later < earlier, "asked again after \(later - earlier) pages")
        }
        #expect(started.current.contains { $0.0 == .forced }, "the writer thread bounds the WAL")
        try reader.execute("COMMIT")
        reader.close()
    }

    /// Under steady commits a background checkpoint ends a few commits behind, and the writer
    /// thread copies those few frames itself (`catch_up`), so that the next commit starts the WAL
    /// over. Seen in the WAL file's header, whose checkpoint sequence number goes up by one at
    /// each start-over: it must have gone up one commit after the catch-up. (A catch-up that
    /// copied nothing would leave it until the next background pass, at least 160 pages later.)
    /// Commits go on until a catch-up is seen: whether a pass ends behind is up to the scheduler.
    /// 160 pages: a pass is caught up when it ends at most 20 frames (about four commits) behind,
    /// room for its own syncs of the database and the WAL; at 40 (5 frames, one commit) passes
    /// ended further behind nearly every time, and no catch-up came in a minute.
    @Test func aCatchUpStartsTheWalOverAtTheNextCommit() throws {
        let dir = try TemporaryDirectory()
        let walPath = dir.path() + "-wal"
        /// The WAL header's checkpoint sequence number (bytes 12–15, big-endian).
        @Sendable func walSequence() -> UInt32? {
            guard let header = FileManager.default.contents(atPath: walPath), header.count >= 32 else { return nil }
            return header[12..<16].reduce(0) { $0 << 8 | UInt32($1) }
        }
        let atCatchUp = Locked<UInt32??>(nil)
        let writer = try LedgerWriter(path: dir.path(), options: .init(commitLinger: .zero, checkpointPages: 160, onCheckpoint: { kind, _, _ in
            // On the writer thread, after the catch-up and before any commit after it.
            if kind == .catchUp { atCatchUp.withLock { if $0 == nil { $0 = .some(walSequence()) } } }
        }))
        defer { writer.close() }
        let deadline = ContinuousClock.now + .seconds(60)
        var n = 0
        while atCatchUp.current == nil && ContinuousClock.now < deadline {
            if writer.stage(sampleEntry(n), onCommit: { _ in }) { writer.recordStaged() }
            n += 1
            // Calls a little apart, as an event loop commits them (see the test above).
            Thread.sleep(forTimeInterval: 0.001)
        }
        let before = try #require(atCatchUp.current, "no catch-up in \(n) commits")
        // One more commit, surely after the catch-up.
        if writer.stage(sampleEntry(n), onCommit: { _ in }) { writer.recordStaged() }
        writer.flush()
        let sequence = try #require(before)
        #expect(walSequence() == sequence &+ 1, "the WAL did not start over at the commit after the catch-up")
        #expect(try LedgerReader(path: dir.path()).count() == n + 1)
    }
}
