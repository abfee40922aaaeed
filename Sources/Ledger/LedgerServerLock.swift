import Foundation
import Synchronization

/// One `tokenctl serve` per SQLite ledger. Budgets, token rates and concurrency are counted in
/// the serving process, rebuilt from the ledger at its start: a second server on the same file
/// would count its own calls only, and together they would let every budget be spent twice.
/// Several replicas share a PostgreSQL ledger instead, whose budgets live in the database.
///
/// An exclusive `flock` on `<ledger>.serve.lock`, held for the server's life (the kernel drops
/// it when the process dies, however it dies); the file holds the server's pid for the message.
public final class LedgerServerLock: Sendable {
    public struct Held: Error, CustomStringConvertible {
        public let ledgerPath: String
        /// As the holder wrote it (its own pid namespace's number); nil if unreadable.
        public let holderPID: String?

        public var description: String {
            let holder = holderPID.map { "(pid \($0)) " } ?? ""
            return "another tokenctl serve \(holder)already serves the SQLite ledger \(ledgerPath): on SQLite, "
                + "budgets and rate limits are counted by the one process that serves it, and a second one "
                + "would let them be spent twice. Stop the other first, or run several replicas on a "
                + "PostgreSQL ledger (--db postgres://…)"
        }
    }

    public struct Unavailable: Error, CustomStringConvertible {
        public let path: String
        public let errno: Int32
        public var description: String {
            "cannot open or create \(path) (\(String(cString: strerror(errno)))): tokenctl needs write access to the ledger's directory"
        }
    }

    /// The open lock file; -1 once released.
    private let descriptor: Mutex<Int32>

    /// Beside the file the path leads to: a symlink to the ledger (or to a directory on its
    /// path) names the same lock.
    public static func path(forLedger ledgerPath: String) -> String {
        URL(fileURLWithPath: ledgerPath).resolvingSymlinksInPath().path + ".serve.lock"
    }

    /// Takes the lock, or throws `Held` (another server has it) or `Unavailable`.
    public init(ledgerPath: String) throws {
        let path = Self.path(forLedger: ledgerPath)
        var fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        // Left by another user (root once ran serve here): flock works on a read-only descriptor.
        if fd < 0, errno == EACCES { fd = open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw Unavailable(path: path, errno: errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            throw Held(ledgerPath: ledgerPath, holderPID: holder?.isEmpty == false ? holder : nil)
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        descriptor = Mutex(fd)
    }

    /// Lets the next server in (a clean stop; a process that dies lets go by itself). The file
    /// stays: removing it could let two servers each lock a different file of the same name.
    public func release() {
        descriptor.withLock { fd in
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }
}
