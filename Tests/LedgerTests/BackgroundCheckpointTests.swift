import Foundation
import LedgerTestSupport
import Testing
@testable import Ledger

/// The checkpoint thread's pass, beside an open writer.
@Suite struct BackgroundCheckpointTests {
    /// A pass syncs the database and the WAL itself, so that the writer's catch-up, which holds
    /// every commit, has only its own few frames to sync (SQLite syncs the database only after
    /// a pass that copied the whole WAL; under load a pass ends behind).
    @Test func aPassThatCopiedFramesSyncsTheDatabaseAndTheWal() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        defer { writer.close() }
        // 500 calls stay in the WAL: far below the writer's own checkpoint threshold.
        #expect(appendAll((0..<500).map { sampleEntry($0) }, to: writer).isEmpty)
        let checkpoint = try BackgroundCheckpoint(path: dir.path())
        defer { checkpoint.close() }
        #expect(checkpoint.request())
        let deadline = ContinuousClock.now + .seconds(10)
        var outcome = checkpoint.takeOutcome()
        while outcome == nil && ContinuousClock.now < deadline {
            Thread.sleep(forTimeInterval: 0.005)
            outcome = checkpoint.takeOutcome()
        }
        let pass = try #require(outcome, "the pass ended")
        #expect(pass.copiedFrames > 0 && pass.copiedFrames == pass.walFrames)
        #expect(pass.syncedFiles == 2)
    }
}
