import Foundation

/// A consistent copy of a SQLite ledger, taken while a gateway writes it. Copying the file
/// alone loses what is still in its `-wal` (most recent calls: the main file can stay a few
/// pages while the WAL holds hours of them); `VACUUM INTO` reads one snapshot through SQLite,
/// WAL included, and writes a compact file that needs no WAL beside it.
public enum LedgerBackup {
    public struct Outcome: Sendable, Hashable {
        public let calls: Int64
        public let keys: Int64
        public let bytes: Int64
    }

    public struct Refusal: Error, CustomStringConvertible {
        public let description: String
    }

    /// Copies the ledger at `path` to `target`, a new file, then opens the copy and checks it.
    public static func run(path: String, to target: String) throws -> Outcome {
        guard !FileManager.default.fileExists(atPath: target) else {
            throw Refusal(description: "\(target) exists: a backup goes to a new file")
        }
        do {
            let source = try SQLiteConnection(path: path, mode: .readWrite)
            defer { source.close() }
            let copy = try source.prepare("VACUUM INTO ?")
            copy.bind(target, at: 1)
            _ = try copy.step()
            copy.finalize()
            // As private as the ledger: the copy holds the same calls and key hashes.
            var mode = stat()
            if stat(path, &mode) == 0 { _ = chmod(target, mode.st_mode & 0o777) }

            let backup = try SQLiteConnection(path: target, mode: .readWrite)
            defer { backup.close() }
            let check = try backup.prepare("PRAGMA quick_check")
            guard try check.step(), check.string(at: 0) == "ok" else {
                throw Refusal(description: "the copy at \(target) does not pass SQLite's quick_check")
            }
            check.finalize()
            let bytes = (try? FileManager.default.attributesOfItem(atPath: target)[.size] as? NSNumber)?.int64Value ?? 0
            return Outcome(calls: try backup.scalarInt("SELECT count(*) FROM calls") ?? 0,
                           keys: try backup.scalarInt("SELECT count(*) FROM api_keys") ?? 0, bytes: bytes)
        } catch {
            try? FileManager.default.removeItem(atPath: target)  // a failed copy is no backup
            throw error
        }
    }
}
