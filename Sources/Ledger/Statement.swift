import CSQLite

/// SQLite copies the value at once (results of our SQL functions).
let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
/// SQLite reads bound text and blobs in place until the statement is reset (see `BoundBytes`).
private let sqliteStatic: sqlite3_destructor_type? = nil

/// A prepared statement with typed binds and columns. Parameter and column indexes follow SQLite:
/// parameters from 1, columns from 0. Used on its connection's thread only.
public final class Statement {
    /// Held so the connection outlives its statements.
    public let connection: SQLiteConnection
    let handle: OpaquePointer
    let sql: String
    private var isFinalized = false
    /// Bound text and blobs, until the next reset.
    private let bound = BoundBytes()

    init(connection: SQLiteConnection, sql: String) throws {
        self.connection = connection
        self.sql = sql
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(connection.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else {
            throw connection.error(rc, "prepare " + SQLiteConnection.abbreviate(sql))
        }
        handle = statement
    }

    deinit { finalize() }

    /// Releases the statement now (else at deinit), so that closing its connection takes effect at once.
    public func finalize() {
        guard !isFinalized else { return }
        isFinalized = true
        sqlite3_finalize(handle)
    }

    // MARK: Binding

    public func bind(_ value: Int64?, at index: Int32) {
        if let value { sqlite3_bind_int64(handle, index, value) } else { sqlite3_bind_null(handle, index) }
    }

    public func bind(_ value: Int?, at index: Int32) {
        bind(value.map(Int64.init), at: index)
    }

    public func bind(_ value: Bool, at index: Int32) {
        sqlite3_bind_int64(handle, index, value ? 1 : 0)
    }

    public func bind(_ value: String?, at index: Int32) {
        guard let value else { sqlite3_bind_null(handle, index); return }
        var copy = value
        let text = copy.withUTF8 { (bound.copy(UnsafeRawBufferPointer($0)), $0.count) }
        sqlite3_bind_text(handle, index, text.0.assumingMemoryBound(to: CChar.self), Int32(text.1), sqliteStatic)
    }

    public func bind(blob bytes: [UInt8], at index: Int32) {
        // A zero-length blob must still be a blob, not NULL: the copy's pointer is never nil.
        let start = bytes.withUnsafeBytes { bound.copy($0) }
        sqlite3_bind_blob(handle, index, start, Int32(bytes.count), sqliteStatic)
    }

    // MARK: Running

    /// Advances one row: true if a row is available, false when done.
    @discardableResult
    public func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.error(rc, SQLiteConnection.abbreviate(sql))
        }
    }

    /// Makes the statement ready to run again with fresh bindings.
    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        bound.reset()
    }

    /// Runs a statement that returns no rows, then resets it.
    public func run() throws {
        defer { reset() }
        try step()
    }

    /// Runs a statement that returns no rows and whose every parameter is bound before each run,
    /// then resets it keeping the bindings: the next row's binds replace them anyway, so the
    /// writer's per-row statements skip `sqlite3_clear_bindings`' pass over every parameter.
    func runRebinding() throws {
        defer {
            sqlite3_reset(handle)
            // The kept bindings point at bytes the next row's binds overwrite: harmless, as
            // SQLite reads them only when stepping, and by then every parameter is bound again.
            bound.reset()
        }
        try step()
    }

    /// Bytes kept for bound values, for tests.
    var boundCapacity: Int { bound.capacity }

    // MARK: Columns

    public func isNull(at column: Int32) -> Bool {
        sqlite3_column_type(handle, column) == SQLITE_NULL
    }

    public func int64(at column: Int32) -> Int64 {
        sqlite3_column_int64(handle, column)
    }

    public func optionalInt64(at column: Int32) -> Int64? {
        isNull(at: column) ? nil : sqlite3_column_int64(handle, column)
    }

    public func int(at column: Int32) -> Int { Int(int64(at: column)) }

    public func bool(at column: Int32) -> Bool { int64(at: column) != 0 }

    public func string(at column: Int32) -> String { optionalString(at: column) ?? "" }

    /// The bytes of a BLOB column, valid only inside `body` (empty for NULL).
    public func withBlob<T>(at column: Int32, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let pointer = sqlite3_column_blob(handle, column)
        let count = Int(sqlite3_column_bytes(handle, column))
        return try body(UnsafeRawBufferPointer(start: pointer, count: pointer == nil ? 0 : count))
    }

    public func optionalString(at column: Int32) -> String? {
        guard let text = sqlite3_column_text(handle, column) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }
}
