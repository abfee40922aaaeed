import Foundation
import Metering
import Synchronization
import Testing
@testable import Ledger
import LedgerTestSupport

@Suite struct LedgerWriterTests {
    @Test func roundTripsEveryField() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        var full = sampleEntry(1, usage: Usage(inputTokens: 1, cachedInputTokens: 2, cacheWriteTokens: 3,
                                               cacheWrite1hTokens: 2, outputTokens: 4, reasoningTokens: 5, webSearches: 6,
                                               audioInputTokens: 1, audioOutputTokens: 3, fileSearches: 2))
        full.price?.webSearch = Money(picodollars: 25_000_000_000)
        full.price?.audioInput = Money(picodollars: 40_000_000)
        full.price?.audioOutput = Money(picodollars: 80_000_000)
        full.price?.fileSearch = Money(picodollars: 3_000_000_000)
        let bare = LedgerEntry(id: "bare", requestId: "req-bare", startedAt: day0, endedAt: day0 + 7,
                               dialect: .anthropic, route: "messages", status: 401, outcome: .refusedAuth)
        #expect(appendAll([full, bare], to: writer).isEmpty)
        writer.close()

        let reader = try LedgerReader(path: dir.path())
        #expect(try reader.entry(id: "call-1") == full)
        #expect(try reader.entry(requestId: "req-bare") == bare)
        #expect(try reader.entry(requestId: "nope") == nil)
        #expect(try reader.entry(id: "call-1")?.priceId == "gpt-4o-mini@2024-07-18")
        let latency = try SQLiteConnection(path: dir.path()).scalarInt("SELECT latency_us FROM calls WHERE id = 'bare'")
        #expect(latency == 7)
    }

    /// 10k appends from 8 threads: 10k rows, and each callback runs once, after its row is
    /// visible to another connection.
    @Test func concurrentAppendsAreAllCommittedOnce() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        let observer = try VisibilityProbe(path: dir.path())
        let callbacks = Locked<[Int]>(Array(repeating: 0, count: 10_000))
        let invisible = Locked<[Int]>([])
        let threads = 8
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for n in stride(from: thread, to: 10_000, by: threads) {
                writer.append(sampleEntry(n)) { result in
                    // Callbacks all run on the writer thread, so the probe is used from one thread.
                    let ok = if case .success = result { true } else { false }
                    if !ok || !observer.isVisible("call-\(n)") {
                        invisible.withLock { $0.append(n) }
                    }
                    callbacks.withLock { $0[n] += 1 }
                }
            }
        }
        writer.flush()
        #expect(callbacks.current.allSatisfy { $0 == 1 })
        #expect(invisible.current.isEmpty)
        writer.close()
        #expect(try LedgerReader(path: dir.path()).count() == 10_000)
        #expect(callbacks.current.allSatisfy { $0 == 1 }, "no callback after close")
    }

    @Test func backlogLargerThanOneBatch() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path(), options: .init(maxBatch: 7))
        #expect(appendAll((0..<1_000).map { sampleEntry($0) }, to: writer).isEmpty)
        #expect(writer.backlog == 0)
        writer.close()
        #expect(!FileManager.default.fileExists(atPath: dir.path() + "-wal"), "closed for real: WAL checkpointed and removed")
        let ids = try LedgerReader(path: dir.path()).entries(since: 0, until: .max).map(\.id)
        #expect(ids == (0..<1_000).map { "call-\($0)" }, "append order is kept")
    }

    @Test func retriesWhileAnotherConnectionHoldsTheWriteLock() throws {
        let dir = try TemporaryDirectory()
        let failures = Locked(0)
        let writer = try LedgerWriter(path: dir.path(), options: .init(
            busyTimeoutMillis: 5, retryInitialMillis: 2, retryMaxMillis: 20,
            onCommitFailure: { error, _ in
                if case .sqlite(let code, _, _) = error, code & 0xff == 5 /* SQLITE_BUSY */ {
                    failures.withLock { $0 += 1 }
                }
            }))
        let blocker = try SQLiteConnection(path: dir.path(), busyTimeoutMillis: 0)
        try blocker.execute("BEGIN IMMEDIATE")
        let committed = Locked(0)
        for n in 0..<100 {
            writer.append(sampleEntry(n)) { result in
                if case .success = result { committed.withLock { $0 += 1 } }
            }
        }
        Thread.sleep(forTimeInterval: 0.2)
        #expect(committed.current == 0, "no callback before commit")
        #expect(failures.current >= 2)
        try blocker.execute("COMMIT")
        writer.flush()
        #expect(committed.current == 100)
        writer.close()
        #expect(try LedgerReader(path: dir.path()).count() == 100)
    }

    @Test func closingWhileCommitsFailReportsFailure() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path(), options: .init(
            busyTimeoutMillis: 5, retryInitialMillis: 2, retryMaxMillis: 10, closeRetries: 2))
        let blocker = try SQLiteConnection(path: dir.path(), busyTimeoutMillis: 0)
        try blocker.execute("BEGIN IMMEDIATE")
        let results = Locked<[Bool]>([])
        for n in 0..<10 {
            writer.append(sampleEntry(n)) { result in
                results.withLock { list in
                    if case .success = result { list.append(true) } else { list.append(false) }
                }
            }
        }
        writer.close()
        #expect(results.current == Array(repeating: false, count: 10))
        try blocker.execute("COMMIT")
        #expect(try LedgerReader(path: dir.path()).count() == 0)
    }

    @Test func duplicateIdFailsOnlyThatRow() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        let failures = appendAll([sampleEntry(1), sampleEntry(1), sampleEntry(2)], to: writer)
        #expect(failures.count == 1)
        #expect(failures.first?.isConstraintViolation == true)
        writer.close()
        #expect(try LedgerReader(path: dir.path()).entries(since: 0, until: .max).map(\.id) == ["call-1", "call-2"])
    }

    @Test func appendAfterCloseFailsImmediately() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        writer.close()
        writer.close()
        let result = Locked<Result<Void, LedgerError>?>(nil)
        writer.append(sampleEntry(1)) { r in result.withLock { $0 = r } }
        expectClosed(result.current)
        writer.flush()
    }

    @Test func readerSeesRowsWhileWriterIsOpen() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        defer { writer.close() }
        appendAll([sampleEntry(1)], to: writer)
        let reader = try LedgerReader(path: dir.path())
        #expect(try reader.count() == 1)
        appendAll([sampleEntry(2)], to: writer)
        #expect(try reader.count() == 2)
        #expect(try reader.report(ReportQuery(since: 0, until: .max)).totals.requests == 2)
    }

    /// The room two bursts grew the writer's queue to goes once the writer is idle, whether the
    /// calls' rollups still waited (their timer wakes it) or the last batch added them already
    /// (it wakes once more for the room alone).
    @Test(arguments: [65_536, 100])
    func theQueuesBurstRoomGoesOnceIdle(rollupFlushRows: Int) async throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path(), options: LedgerWriter.Options(
            rollupFlushRows: rollupFlushRows, rollupFlushInterval: .seconds(1)))
        // Two bursts of 1,000 rows queued at once (as an event loop's pass records them): the
        // second takes the first's batch storage back into the queue (swapped).
        // (Committed is watched from a reader: a `flush` would wake the writer with nothing queued.)
        let reader = try LedgerReader(path: dir.path())
        defer { reader.close() }
        for burst in 1...2 {
            for n in 0..<1_000 { _ = writer.stage(sampleEntry(burst * 1_000 + n)) { _ in } }
            writer.recordStaged()
            let deadline = ContinuousClock.now + .seconds(10)
            while try reader.count() < burst * 1_000, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        // Once at least (twice if the machine took a second between the bursts).
        while writer.burstRoomReleases.load(ordering: .relaxed) == 0 || writer.queueRoom > 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(writer.burstRoomReleases.load(ordering: .relaxed) >= 1)
        #expect(writer.queueRoom == 0)
        writer.close()
        #expect(try reader.count() == 2_000)
    }
}

/// A second connection that checks a call's row is visible; used only on the writer thread.
private final class VisibilityProbe: @unchecked Sendable {
    private let connection: SQLiteConnection
    private let query: Statement

    init(path: String) throws {
        connection = try SQLiteConnection(path: path)
        query = try connection.prepare("SELECT COUNT(*) FROM calls WHERE id = ?1")
    }

    func isVisible(_ id: String) -> Bool {
        defer { query.reset() }
        query.bind(id, at: 1)
        return (try? query.step()) == true && query.int64(at: 0) == 1
    }
}
