import CSQLite

/// Why a ledger operation failed. SQLite failures carry sqlite's own message and extended code.
public enum LedgerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// SQLite returned `code` (extended result code) with `message`; `context` names what was attempted.
    case sqlite(code: Int32, message: String, context: String)
    /// The writer or store was closed before the operation could run.
    case closed
    /// A stored row could not be turned into a value (e.g. an outcome this build does not know).
    case invalidRow(String)
    /// The database was written by a newer tokenctl whose schema this build does not understand.
    case schemaTooNew(found: Int, supported: Int)
    /// PostgreSQL answered with SQLSTATE `state` (or the connection failed: state empty).
    case postgres(state: String, message: String, context: String)

    /// A constraint (e.g. a duplicate call id or key) rejected the row; retrying cannot help.
    public var isConstraintViolation: Bool {
        switch self {
        case .sqlite(let code, _, _): return code & 0xff == SQLITE_CONSTRAINT
        // Class 23: integrity constraint violation (unique, foreign key, not null, check).
        case .postgres(let state, _, _): return state.hasPrefix("23")
        default: return false
        }
    }

    /// Another connection held the lock past the busy timeout.
    var isBusy: Bool {
        if case .sqlite(let code, _, _) = self { return code & 0xff == SQLITE_BUSY }
        return false
    }

    /// The file, its directory or the connection does not allow writing.
    var isReadOnly: Bool {
        if case .sqlite(let code, _, _) = self { return code & 0xff == SQLITE_READONLY }
        return false
    }

    /// The file could not be opened or created (a directory without write or search access).
    var isCannotOpen: Bool {
        if case .sqlite(let code, _, _) = self { return code & 0xff == SQLITE_CANTOPEN }
        return false
    }

    public var description: String {
        switch self {
        case .sqlite(let code, let message, let context):
            let text = "sqlite error \(code) during \(context): \(message)"
            if code & 0xff == SQLITE_NOTADB {
                return text + " (the file is not a tokenctl ledger: --db names the SQLite file serve writes)"
            }
            // What to do about it: a finance user running a report may not know SQLite needs this.
            if isReadOnly || isCannotOpen {
                return text + " (tokenctl needs write access to the ledger file and its directory: "
                    + "opening brings its schema up to date, and SQLite keeps -wal and -shm files beside it)"
            }
            return text
        case .closed:
            return "ledger closed"
        case .invalidRow(let why):
            return "invalid ledger row: \(why)"
        case .schemaTooNew(let found, let supported):
            return "ledger schema version \(found) is newer than this build supports (\(supported)): run the release that "
                + "wrote it, or set the ledger back for a rollback (docs/ledger.md, \"Schema versions and rollback\")"
        case .postgres(let state, let message, let context):
            return "postgres error \(state.isEmpty ? "" : state + " ")during \(context): \(message)"
        }
    }
}
