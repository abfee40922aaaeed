extension LedgerWriter {
    public struct Options: Sendable {
        /// Most rows per transaction; a backlog larger than this commits in several transactions.
        public var maxBatch: Int
        /// How long BEGIN waits for another process's write lock before the attempt counts as failed.
        public var busyTimeoutMillis: Int32
        /// First retry delay after a failed commit; doubles per attempt up to `retryMaxMillis`.
        public var retryInitialMillis: Int
        public var retryMaxMillis: Int
        /// Attempts per batch once `close()` was called, before its rows are failed.
        public var closeRetries: Int
        /// How long the writer thread, woken by journaled rows, waits for more before it commits
        /// (a `flush`, `close` or a caller waiting for its commit cuts it short). Fewer, larger
        /// transactions cost less CPU per row: at 16 connections the writer used 12.5–13.1 µs per
        /// call at 0, 9.2–10.1 at 2 ms, 6.7–6.9 at 10 ms, with the same latency at 1 and 16
        /// connections. Readers of SQLite see a journaled call up to this much after its answer.
        public var commitLinger: Duration
        /// WAL pages written since the last checkpoint that make the writer ask for one when idle,
        /// or at twice this if it never is (run by `BackgroundCheckpoint`, beside the commits).
        /// Under load that one ends a few commits behind; when it left at most an eighth of this
        /// (256 frames at most), the writer thread copies the rest itself between two commits, so
        /// the WAL starts over. At four times this it checkpoints itself whatever is left, which
        /// bounds the WAL. Never inside a commit (SQLite's auto-checkpoint, which fsyncs in
        /// COMMIT, is replaced).
        ///
        /// A catch-up holds commits back for its two fsyncs (1–2 ms here, since the background
        /// pass syncs what it copied itself; 1–5 ms before), and at a steady moderate rate
        /// nearly every background pass ends behind and needs one: at 1,000 pages
        /// that was one every ~250 calls at 600 calls/s (a call alone in its commit writes four
        /// to six pages). 8,192 pages (32 MB) makes it one every ~2,400 calls; the WAL stays
        /// under 135 MB (frame headers included).
        public var checkpointPages: Int32
        /// Committed calls are added to the rollup cells in one go once this many wait, or the
        /// oldest waited `rollupFlushInterval` (reports add the waiting calls themselves, so they
        /// are exact either way). 1: in every transaction.
        public var rollupFlushRows: Int
        public var rollupFlushInterval: Duration
        /// Called on the writer thread for every failed attempt (attempt number from 1), to log or count.
        public var onCommitFailure: (@Sendable (LedgerError, Int) -> Void)?
        /// Called on the writer thread after each committed transaction, with its row count and
        /// how long it took from BEGIN to COMMIT (retries included), for metrics.
        public var onBatchCommitted: (@Sendable (_ rows: Int, _ duration: Duration) -> Void)?
        /// Called for each checkpoint (on the writer thread), with the WAL's pages then, to
        /// count them: the writer's cost two fsyncs whatever they copy, a background one up to
        /// four (it syncs what it copied itself). `held`: how long the writer thread held every
        /// commit for it (zero for a background one, which holds none).
        public var onCheckpoint: (@Sendable (Checkpoint, _ walPages: Int32, _ held: Duration) -> Void)?

        public init(maxBatch: Int = 4_096, busyTimeoutMillis: Int32 = 5_000, retryInitialMillis: Int = 10,
                    retryMaxMillis: Int = 1_000, closeRetries: Int = 3, commitLinger: Duration = .milliseconds(10),
                    checkpointPages: Int32 = 8_192,
                    rollupFlushRows: Int = 65_536,
                    rollupFlushInterval: Duration = .seconds(2),
                    onCommitFailure: (@Sendable (LedgerError, Int) -> Void)? = nil,
                    onBatchCommitted: (@Sendable (_ rows: Int, _ duration: Duration) -> Void)? = nil,
                    onCheckpoint: (@Sendable (Checkpoint, _ walPages: Int32, _ held: Duration) -> Void)? = nil) {
            self.maxBatch = max(1, maxBatch)
            self.busyTimeoutMillis = busyTimeoutMillis
            self.retryInitialMillis = max(1, retryInitialMillis)
            self.retryMaxMillis = max(self.retryInitialMillis, retryMaxMillis)
            self.closeRetries = max(1, closeRetries)
            self.commitLinger = max(.zero, commitLinger)
            self.checkpointPages = max(1, checkpointPages)
            self.rollupFlushRows = max(1, rollupFlushRows)
            self.rollupFlushInterval = max(.zero, rollupFlushInterval)
            self.onCommitFailure = onCommitFailure
            self.onBatchCommitted = onBatchCommitted
            self.onCheckpoint = onCheckpoint
        }

        /// Which checkpoint started (`checkpointPages`).
        public enum Checkpoint: String, Sendable, CaseIterable {
            /// Asked of the checkpoint thread, beside the commits.
            case background
            /// Run by the writer thread between commits, to copy the few frames a background
            /// checkpoint left behind, so that the WAL starts over.
            case catchUp = "catch_up"
            /// Run by the writer thread between commits at four times `checkpointPages`, to bound
            /// the WAL when the background checkpoints stay far behind.
            case forced
        }

        /// The wait before retrying a failed commit: doubling from `retryInitialMillis`, capped.
        public func retryDelayMillis(attempt: Int) -> Int {
            min(retryInitialMillis << min(attempt - 1, 20), retryMaxMillis)
        }
    }
}
