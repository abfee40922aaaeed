import CSQLite
import Testing
@testable import Ledger
import LedgerTestSupport

@Suite struct SchemaTests {
    private func tables(_ connection: SQLiteConnection) throws -> Set<String> {
        let s = try connection.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'index', 'trigger')")
        var names = Set<String>()
        while try s.step() { names.insert(s.string(at: 0)) }
        return names
    }

    /// SQLite's memory statistics take a global mutex on every allocation; they are off before
    /// any connection opens, so nothing is counted.
    @Test func sqliteKeepsNoMemoryStatistics() throws {
        let dir = try TemporaryDirectory()
        let connection = try SQLiteConnection(path: dir.path())
        try connection.execute("CREATE TABLE t (a TEXT); INSERT INTO t VALUES ('some text to allocate for')")
        #expect(sqlite3_memory_used() == 0, "\(sqlite3_memory_used()) bytes counted")
        connection.close()
    }

    @Test func migratesFromEmpty() throws {
        let dir = try TemporaryDirectory()
        let connection = try SQLiteConnection(path: dir.path())
        try Schema.migrate(connection)
        #expect(try Schema.version(of: connection) == Schema.latestVersion)
        let names = try tables(connection)
        for expected in ["calls", "api_keys", "meta", "calls_started_at", "calls_user_started_at",
                         "calls_request_id", "api_keys_stamp_insert", "api_keys_stamp_update"] {
            #expect(names.contains(expected), "missing \(expected)")
        }
    }

    @Test func migratesFromV1KeepingRows() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path()
        do {
            let connection = try SQLiteConnection(path: path)
            try connection.configureForLedger()
            try Schema.migrate(connection, upTo: 1)
            #expect(try Schema.version(of: connection) == 1)
            #expect(try !tables(connection).contains("api_keys"))
            // A row as a v1 ledger held it (no later columns).
            try connection.execute("""
                INSERT INTO calls (id, request_id, started_at, ended_at, latency_us, dialect, route, stream,
                  status, outcome, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens,
                  reasoning_tokens, usage_source, cost_pd)
                VALUES ('call-1', 'req-1', \(day0), \(day0 + 1000), 1000, 'openai', 'chat.completions', 0,
                  200, 'ok', 10, 0, 0, 5, 0, 'provider', 4500000)
                """)
            connection.close()
        }
        let writer = try LedgerWriter(path: path)
        appendAll([sampleEntry(2)], to: writer)
        writer.close()
        let reader = try LedgerReader(path: path)
        #expect(try reader.entries(since: 0, until: .max).map(\.id) == ["call-1", "call-2"])
        #expect(try Schema.version(of: reader.connection) == Schema.latestVersion)
        let keys = try KeyStore(path: path)
        #expect(try keys.changeStamp() == 0)
        #expect(try keys.list().isEmpty)
    }

    @Test func reopeningIsIdempotent() throws {
        let dir = try TemporaryDirectory()
        for _ in 0..<3 {
            let connection = try SQLiteConnection(path: dir.path())
            try Schema.migrate(connection)
            try Schema.migrate(connection)
            #expect(try Schema.version(of: connection) == Schema.latestVersion)
        }
        let keys = try KeyStore(path: dir.path())
        try keys.insert(APIKeyRecord(id: "k1", secretHash: "h1", user: "u"))
        _ = try LedgerReader(path: dir.path())
        #expect(try keys.list().count == 1)
    }

    @Test func refusesNewerSchema() throws {
        let dir = try TemporaryDirectory()
        let connection = try SQLiteConnection(path: dir.path())
        try connection.execute("PRAGMA user_version = \(Schema.latestVersion + 1)")
        #expect(throws: LedgerError.schemaTooNew(found: Schema.latestVersion + 1, supported: Schema.latestVersion)) {
            _ = try LedgerReader(path: dir.path())
        }
    }

    @Test func readerDoesNotCreateMissingFile() throws {
        let dir = try TemporaryDirectory()
        #expect(throws: LedgerError.self) { _ = try LedgerReader(path: dir.path("missing.sqlite")) }
    }

    @Test func usesWAL() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        defer { writer.close() }
        let other = try SQLiteConnection(path: dir.path())
        let s = try other.prepare("PRAGMA journal_mode")
        #expect(try s.step())
        #expect(s.string(at: 0) == "wal")
    }
}
