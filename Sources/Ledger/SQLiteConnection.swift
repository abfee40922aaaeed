import Glibc
import CSQLite
import CWalFrames

/// One SQLite connection. Not thread-safe by design: each connection belongs to one thread or is
/// guarded by its owner's lock (opened with `SQLITE_OPEN_NOMUTEX`, so SQLite adds no mutex of its own).
public final class SQLiteConnection {
    public enum OpenMode: Sendable {
        /// Creates the file if missing.
        case readWriteCreate
        /// Fails if the file is missing (reports should not create an empty ledger at a mistyped path).
        case readWrite
    }

    public let path: String
    /// The raw handle, for the few calls the wrapper does not cover.
    public let handle: OpaquePointer
    private var isOpen = true

    /// Process-wide settings, applied once before the first connection opens.
    private static let libraryConfigured: Bool = tokenctl_sqlite3_disable_memory_statistics() == SQLITE_OK

    /// The VFS of the ledger's writing connection: SQLite's default one, except that the WAL
    /// frames of a commit reach the file in one write instead of two per frame (header, then
    /// page). Files and locks are the default VFS's: other connections and processes read and
    /// write the ledger as usual.
    public static let walFramesVFS: String? = {
        // Registering is SQLite's first call in a writer's process: the settings come before it.
        _ = libraryConfigured
        return tokenctl_wal_frames_register() == SQLITE_OK ? TOKENCTL_WAL_FRAMES_VFS : nil
    }()

    /// `vfs`: a registered VFS's name (nil: the default one).
    public init(path: String, mode: OpenMode = .readWriteCreate, busyTimeoutMillis: Int32 = 5_000,
                vfs: String? = nil) throws {
        _ = Self.libraryConfigured
        self.path = path
        var flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX
        if mode == .readWriteCreate {
            flags |= SQLITE_OPEN_CREATE
            Self.createPrivately(path)
        }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, vfs)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw LedgerError.sqlite(code: rc, message: message, context: "open \(path)")
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, busyTimeoutMillis)
    }

    deinit { close() }

    /// Mode of a ledger file this creates, and of its journals: owner and group, not everyone
    /// (SQLite would make it 0644, less the umask). A ledger names users, keys' teams and what
    /// each spends. SQLite gives its WAL and shared-memory files the database's mode.
    public static let fileMode: mode_t = 0o640

    /// Creates `path` empty (which SQLite opens as a new database) with `fileMode`, unless it
    /// exists or is not a plain file name (`:memory:`, a `file:` URI).
    private static func createPrivately(_ path: String) {
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
        let descriptor = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, fileMode)
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    /// Closes the connection; later use is a programming error. `close_v2` defers the real close
    /// until any statement still alive is finalized, so ordering of deinit does not matter.
    public func close() {
        guard isOpen else { return }
        isOpen = false
        sqlite3_close_v2(handle)
    }

    /// Runs one or more statements that return no rows we need.
    public func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(errorMessage)
            throw LedgerError.sqlite(code: sqlite3_extended_errcode(handle), message: message,
                                     context: Self.abbreviate(sql))
        }
    }

    public func prepare(_ sql: String) throws -> Statement {
        try Statement(connection: self, sql: sql)
    }

    /// The single integer a query like `PRAGMA user_version` returns.
    public func scalarInt(_ sql: String) throws -> Int64? {
        let statement = try prepare(sql)
        guard try statement.step() else { return nil }
        return statement.optionalInt64(at: 0)
    }

    /// Rows changed by the most recent INSERT/UPDATE/DELETE on this connection.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// The SQLite library's version string, for diagnostics.
    public static var libraryVersion: String { String(cString: sqlite3_libversion()) }

    func error(_ rc: Int32, _ context: String) -> LedgerError {
        .sqlite(code: sqlite3_extended_errcode(handle) != 0 ? sqlite3_extended_errcode(handle) : rc,
                message: String(cString: sqlite3_errmsg(handle)), context: context)
    }

    static func abbreviate(_ sql: String) -> String {
        let flat = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return flat.count <= 80 ? flat : String(flat.prefix(77)) + "..."
    }
}

extension SQLiteConnection {
    /// WAL so a report can read while the server writes; NORMAL sync is durable across process
    /// crashes (only a power loss can drop the last commits). Never EXCLUSIVE locking: `tokenctl
    /// report` must open the live ledger from another process.
    func configureForLedger() throws {
        try execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    }
}
