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

    public var description: String {
        switch self {
        case .sqlite(let code, let message, let context):
            return "sqlite error \(code) during \(context): \(message)"
        case .closed:
            return "ledger closed"
        case .invalidRow(let why):
            return "invalid ledger row: \(why)"
        case .schemaTooNew(let found, let supported):
            return "ledger schema version \(found) is newer than this build supports (\(supported))"
        case .postgres(let state, let message, let context):
            return "postgres error \(state.isEmpty ? "" : state + " ")during \(context): \(message)"
        }
    }
}
