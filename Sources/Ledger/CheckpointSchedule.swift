/// When the ledger's WAL is checkpointed, and by whom: pure decisions, fed the WAL's size after
/// each commit and what each background checkpoint achieved. `LedgerWriter` carries them out.
///
/// SQLite starts the WAL over from its beginning at a commit only once a checkpoint has copied
/// all of it. A background checkpoint (`BackgroundCheckpoint`, beside the commits) is asked for
/// once per `pagesPerCheckpoint` written, when the writer is idle (at twice that if it never is).
/// Under load it ends a few commits behind, so the writer thread copies those few frames itself
/// between two commits (a catch-up, milliseconds in which no commit runs: two fsyncs of at
/// most 256 frames). A pass that ended further behind is followed by another at once while the
/// frames left behind halve. If the background checkpoints stay far behind, or a reader's old
/// snapshot holds them back, the writer thread checkpoints at four times `pagesPerCheckpoint`
/// whatever is left (forced), which bounds the WAL.
struct CheckpointSchedule {
    enum Action: Equatable {
        case none
        /// Ask the checkpoint thread for one; report `requested` if it took the request.
        case requestBackground
        /// Checkpoint on the writer thread between two commits, then report `checkpointed`.
        case checkpoint(LedgerWriter.Options.Checkpoint)
    }

    let pagesPerCheckpoint: Int32

    /// WAL pages after the previous commit: fewer now means the WAL started over.
    private var pagesBefore: Int32 = 0
    /// Times the WAL started over; an outcome of a checkpoint asked for before is stale.
    private var generation = 0
    private var generationAtRequest = 0
    private var pagesAtCheckpoint: Int32 = 0
    private var pagesAtRequest: Int32 = 0
    /// Frames the latest background pass left behind, when another was asked for at once.
    private var chasedFrames: Int32 = .max
    private var catchUpDue = false

    init(pagesPerCheckpoint: Int32) {
        self.pagesPerCheckpoint = max(1, pagesPerCheckpoint)
    }

    /// At most this many frames left behind, the writer thread copies them. Commits wait for
    /// that copy and its fsyncs, so it stays small (1 MB) whatever the threshold; a pass ends
    /// behind by what commits wrote while it ran its fsyncs.
    var catchUpFrames: Int32 { min(max(1, pagesPerCheckpoint / 8), 256) }

    /// After a commit left `pages` in the WAL; `outcome` is the background checkpoint that
    /// finished since the previous call, if any.
    mutating func afterCommit(walPages pages: Int32, outcome: BackgroundCheckpoint.Outcome?, queueIdle: Bool) -> Action {
        if pages < pagesBefore {
            generation += 1
            pagesAtCheckpoint = 0
            pagesAtRequest = 0
            chasedFrames = .max
            catchUpDue = false
        }
        pagesBefore = pages
        // A WAL larger at the pass than now started over since (a restart not seen above).
        let chase = outcome.map { generationAtRequest == generation && $0.walFrames <= pages && follow($0, pages: pages) } ?? false
        let written = pages - pagesAtCheckpoint
        if catchUpDue { return .checkpoint(.catchUp) }
        // Before a chase: a background pass running would make the writer's checkpoint busy.
        if written >= pagesPerCheckpoint * 4 { return .checkpoint(.forced) }
        if chase { return .requestBackground }
        // One request per `pagesPerCheckpoint` written: asking again at each idle commit ran
        // one every few calls under steady load (two fsyncs each, for a few pages). Busy all
        // along (a committer that never lets the queue run dry), it asks at twice that anyway:
        // waiting for the forced checkpoint would hold every commit for all it copies.
        let due = queueIdle || written >= pagesPerCheckpoint * 2
        if written >= pagesPerCheckpoint, due, pages - pagesAtRequest >= pagesPerCheckpoint {
            return .requestBackground
        }
        return .none
    }

    /// The checkpoint thread took the request made with `pages` in the WAL.
    mutating func requested(walPages pages: Int32) {
        pagesAtRequest = pages
        generationAtRequest = generation
    }

    /// The writer thread checkpointed with `pages` in the WAL: the next commit starts the WAL
    /// over, unless a reader still uses an old snapshot. (Not after one that found the
    /// checkpoint thread busy: that one copied nothing, and is asked for again.)
    mutating func checkpointed(walPages pages: Int32) {
        pagesAtCheckpoint = pages
        catchUpDue = false
        chasedFrames = .max
    }

    /// Reads a finished background pass; true to ask for another at once.
    private mutating func follow(_ outcome: BackgroundCheckpoint.Outcome, pages: Int32) -> Bool {
        // Frames appended since the pass ended count too.
        let behind = pages - outcome.copiedFrames
        // It copied less than it saw: a reader's old snapshot held it back, and would hold the next.
        let heldBack = outcome.copiedFrames < outcome.walFrames
        if !heldBack && behind <= catchUpFrames {
            // Nothing behind: the next commit starts the WAL over by itself.
            catchUpDue = behind > 0
            return false
        }
        if !heldBack && behind < min(pagesPerCheckpoint, chasedFrames / 2) {
            chasedFrames = behind
            return true
        }
        chasedFrames = .max
        return false
    }
}
