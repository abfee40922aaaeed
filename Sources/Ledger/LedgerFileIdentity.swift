import Foundation

/// Which file a SQLite ledger's path named when the gateway opened it. Deleted or replaced under
/// a running gateway (`rm tokenctl.sqlite*`, a restore copied over it), its connections still
/// write the old file: every call recorded from then on would be lost with it, unseen, and the
/// next start would find an empty ledger. The gateway compares the path with the open file.
public struct LedgerFileIdentity: Sendable, Hashable {
    public let path: String
    private let device: UInt64
    private let inode: UInt64

    /// The file at `path` now; nil if there is none.
    public init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        self.path = path
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }

    /// What is wrong with the path now, for the operator; nil while it still names this file.
    public func problem() -> String? {
        guard let now = LedgerFileIdentity(path: path) else {
            return "the ledger file \(path) was deleted while the gateway had it open: calls recorded since go to the deleted file. Move it back, or stop the gateway (calls recorded since it went are lost with it)"
        }
        guard now == self else {
            return "the ledger file \(path) was replaced while the gateway had it open (another file now has its name): calls recorded since go to the replaced file. Stop the gateway before restoring a ledger"
        }
        return nil
    }
}
