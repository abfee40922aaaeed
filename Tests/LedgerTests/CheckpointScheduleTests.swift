import Testing
@testable import Ledger

/// When the WAL is checkpointed, fed commits and background outcomes by hand (the writer's own
/// wiring is in `StagedCommitTests`).
@Suite struct CheckpointScheduleTests {
    typealias Outcome = BackgroundCheckpoint.Outcome

    /// Commits of `frames` each from `pages` until the schedule asks for something; returns the
    /// action and the WAL's pages then.
    static func commitUntilAsked(_ schedule: inout CheckpointSchedule, from pages: inout Int32, frames: Int32 = 5,
                                 idle: Bool = true, limit: Int32 = 10_000) -> CheckpointSchedule.Action {
        while pages < limit {
            pages += frames
            let action = schedule.afterCommit(walPages: pages, outcome: nil, queueIdle: idle)
            if action != .none { return action }
        }
        return .none
    }

    /// Commits of 5 pages from an empty WAL until the first background request (at 65 pages),
    /// which the checkpoint thread took.
    static func askedAt65() -> CheckpointSchedule {
        var schedule = CheckpointSchedule(pagesPerCheckpoint: 64)
        var pages: Int32 = 0
        let action = commitUntilAsked(&schedule, from: &pages)
        precondition(action == .requestBackground && pages == 65)
        schedule.requested(walPages: pages)
        return schedule
    }

    /// After `askedAt65`, the pass ended 35 frames behind (more than 64 / 8): another was asked
    /// for at once, even while busy, and taken.
    static func chasedAt100() -> CheckpointSchedule {
        var schedule = askedAt65()
        let action = schedule.afterCommit(walPages: 100, outcome: Outcome(walFrames: 65, copiedFrames: 65), queueIdle: false)
        precondition(action == .requestBackground)
        schedule.requested(walPages: 100)
        return schedule
    }

    @Test func asksForABackgroundCheckpointOncePerThresholdWhenIdle() {
        var busy = CheckpointSchedule(pagesPerCheckpoint: 64)
        var pages: Int32 = 0
        #expect(Self.commitUntilAsked(&busy, from: &pages, idle: false) == .requestBackground)
        #expect(pages == 130, "busy all along: at twice the threshold, long before the forced one at four times")
        busy.requested(walPages: pages)
        #expect(Self.commitUntilAsked(&busy, from: &pages, idle: false) == .requestBackground)
        #expect(pages == 195, "then once per threshold")
        var schedule = Self.askedAt65()
        pages = 65
        #expect(Self.commitUntilAsked(&schedule, from: &pages) == .requestBackground)
        #expect(pages == 130, "not again before 64 more pages")
    }

    @Test func aPassThatEndedAFewFramesBehindIsFinishedByTheWriterAndTheWALStartsOver() {
        var schedule = Self.askedAt65()
        // The pass copied the 65 frames it saw; one commit of 5 landed meanwhile.
        #expect(schedule.afterCommit(walPages: 70, outcome: Outcome(walFrames: 65, copiedFrames: 65), queueIdle: false)
                == .checkpoint(.catchUp))
        // Until the writer thread has done it, every commit says so.
        #expect(schedule.afterCommit(walPages: 75, outcome: nil, queueIdle: false) == .checkpoint(.catchUp))
        schedule.checkpointed(walPages: 75)
        // The WAL started over: counting starts again from its beginning.
        var pages: Int32 = 0
        #expect(Self.commitUntilAsked(&schedule, from: &pages) == .requestBackground)
        #expect(pages == 65)
    }

    @Test func aPassFurtherBehindIsFollowedByAnotherWhileWhatItLeavesHalves() {
        var schedule = Self.chasedAt100()
        // 15 behind, under half of 35: once more.
        #expect(schedule.afterCommit(walPages: 115, outcome: Outcome(walFrames: 100, copiedFrames: 100), queueIdle: false)
                == .requestBackground)
        schedule.requested(walPages: 115)
        // 5 behind: the writer finishes it.
        #expect(schedule.afterCommit(walPages: 120, outcome: Outcome(walFrames: 115, copiedFrames: 115), queueIdle: false)
                == .checkpoint(.catchUp))
    }

    @Test func aChaseThatDoesNotHalveStopsAndTheThresholdAppliesAgain() {
        var schedule = Self.chasedAt100()
        // 20 behind is not under half of 35: no pass at once (this is what kept the checkpoint
        // thread busy for a few pages every few calls), and 20 pages since the request is not 64.
        #expect(schedule.afterCommit(walPages: 120, outcome: Outcome(walFrames: 100, copiedFrames: 100), queueIdle: true)
                == .none)
        var pages: Int32 = 120
        #expect(Self.commitUntilAsked(&schedule, from: &pages) == .requestBackground)
        #expect(pages == 165)
    }

    @Test func aPassHeldBackByAReaderIsNeitherFollowedNorFinishedAndTheForcedOneBoundsTheWAL() {
        var schedule = Self.askedAt65()
        // A reader's snapshot ends at frame 10: the pass copied 10 of the 65 it saw.
        #expect(schedule.afterCommit(walPages: 70, outcome: Outcome(walFrames: 65, copiedFrames: 10), queueIdle: false)
                == .none)
        var pages: Int32 = 70
        var asked: [CheckpointSchedule.Action] = []
        while asked.last != .checkpoint(.forced) && pages < 1_000 {
            let action = Self.commitUntilAsked(&schedule, from: &pages)
            asked.append(action)
            if action == .requestBackground { schedule.requested(walPages: pages) }
        }
        #expect(asked == [.requestBackground, .requestBackground, .checkpoint(.forced)])
        #expect(pages >= 4 * 64 && pages < 4 * 64 + 5)
        schedule.checkpointed(walPages: pages)
        #expect(schedule.afterCommit(walPages: pages + 5, outcome: nil, queueIdle: true) == .none,
                "the reader still holds the WAL: counting goes on from the forced checkpoint")
    }

    @Test func anOutcomeFromBeforeTheWALStartedOverIsIgnored() {
        var schedule = Self.askedAt65()
        // The pass copied everything, and a commit started the WAL over before the writer looked.
        #expect(schedule.afterCommit(walPages: 5, outcome: nil, queueIdle: true) == .none)
        #expect(schedule.afterCommit(walPages: 10, outcome: Outcome(walFrames: 65, copiedFrames: 65), queueIdle: true)
                == .none, "10 - 65 frames behind means nothing in the new WAL")
    }

    @Test func theWALStartingOverIsSeenFromThePreviousCommitsCount() {
        var schedule = Self.askedAt65()
        #expect(schedule.afterCommit(walPages: 120, outcome: nil, queueIdle: false) == .none)
        // The WAL started over and a large commit wrote 80 pages: more than at the request (the
        // mark the restart was once told by), fewer than after the previous commit.
        #expect(schedule.afterCommit(walPages: 80, outcome: nil, queueIdle: true) == .requestBackground,
                "80 pages since the restart, past the threshold")
    }

    @Test func aCatchUpStillDueWhenTheWALStartsOverIsDropped() {
        var schedule = Self.askedAt65()
        #expect(schedule.afterCommit(walPages: 70, outcome: Outcome(walFrames: 65, copiedFrames: 65), queueIdle: false)
                == .checkpoint(.catchUp))
        #expect(schedule.afterCommit(walPages: 5, outcome: nil, queueIdle: false) == .none)
    }

    @Test func aCatchUpAfterWhichAReaderKeptTheWALIsNotAskedForAgain() {
        var schedule = Self.askedAt65()
        #expect(schedule.afterCommit(walPages: 70, outcome: Outcome(walFrames: 65, copiedFrames: 65), queueIdle: false)
                == .checkpoint(.catchUp))
        schedule.checkpointed(walPages: 70)
        var pages: Int32 = 70
        #expect(Self.commitUntilAsked(&schedule, from: &pages) == .requestBackground)
        #expect(pages == 135, "the next after 64 pages more, counted from the catch-up")
    }

    @Test func aPassThatLeftNothingBehindNeedsNoCatchUp() {
        var schedule = Self.askedAt65()
        #expect(schedule.afterCommit(walPages: 65, outcome: Outcome(walFrames: 65, copiedFrames: 65), queueIdle: true) == .none)
    }

    @Test func anOutcomeOfALargerWALThanNowIsStale() {
        var schedule = Self.askedAt65()
        #expect(schedule.afterCommit(walPages: 120, outcome: nil, queueIdle: false) == .none)
        // The pass saw 130 frames (another process committed too), yet the WAL now has 125: it
        // started over, unseen because its first commits since reached the 120 before. The
        // outcome is about the old WAL.
        #expect(schedule.afterCommit(walPages: 125, outcome: Outcome(walFrames: 130, copiedFrames: 130), queueIdle: false)
                == .none)
    }

    @Test func theForcedCheckpointComesBeforeAChase() {
        var schedule = Self.askedAt65()
        // 60 frames behind at 260 pages would ask for another pass; past four times 64 the writer
        // checkpoints instead (a pass running would make its checkpoint busy).
        #expect(schedule.afterCommit(walPages: 260, outcome: Outcome(walFrames: 200, copiedFrames: 200), queueIdle: false)
                == .checkpoint(.forced))
    }

    @Test func theWriterCopiesAtMost256FramesWhateverTheThreshold() {
        func afterAPass(behind: Int32) -> CheckpointSchedule.Action {
            var schedule = CheckpointSchedule(pagesPerCheckpoint: 8_192)
            schedule.requested(walPages: 8_192)
            return schedule.afterCommit(walPages: 8_192 + behind, outcome: Outcome(walFrames: 8_192, copiedFrames: 8_192),
                                        queueIdle: false)
        }
        #expect(afterAPass(behind: 256) == .checkpoint(.catchUp))
        #expect(afterAPass(behind: 257) == .requestBackground, "an eighth of 8,192 would be 1,024: chased instead")
    }
}
