import Synchronization

/// Whether the WAL has been checkpointed whole since the writer thread's last commit, so that
/// the next commit starts it over. SQLite syncs the WAL in that commit, for its new header,
/// even at `synchronous=NORMAL` (0.1–0.4 ms here, more on a slow disk): a staged commit leaves
/// that one to the writer thread, off the caller's event loop. Set by whichever thread
/// checkpointed; cleared by the writer thread's next commit.
final class WalRestart: Sendable {
    private let due = Atomic<Bool>(false)

    var isDue: Bool { due.load(ordering: .acquiring) }

    /// A checkpoint copied every frame of the WAL.
    func expect() { due.store(true, ordering: .releasing) }

    /// The writer thread committed: the WAL started over if it was due to.
    func happened() { due.store(false, ordering: .releasing) }
}
