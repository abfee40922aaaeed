import CSQLite
import Testing
@testable import Ledger
import LedgerTestSupport
import Metering

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
                         "calls_client_request_id", "api_keys_stamp_insert", "api_keys_stamp_update"] {
            #expect(names.contains(expected), "missing \(expected)")
        }
        #expect(!names.contains("calls_request_id"), "v7 replaced it")
    }

    /// v7 indexes `request_id` only where a client sent it: an id the gateway made (`req_` and the
    /// row's id) is found through `id`. Every kind is found, by index, across the migration.
    @Test func findsRequestIdsMadeOrSentAcrossV7() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path()
        let made = LedgerEntry.madeRequestIDPrefix
        func entry(_ n: Int, id: String, requestId: String) -> LedgerEntry {
            var e = sampleEntry(n)
            e.id = id
            e.requestId = requestId
            return e
        }
        // Before v7 the gateway made ids unrelated to the row's: they stay in the index.
        let v6Made = entry(1, id: "0000000000000001aaaaaaaaaaaaaaaa", requestId: made + "0000000000000001bbbbbbbb")
        let v6Sent = entry(2, id: "0000000000000002aaaaaaaaaaaaaaaa", requestId: "client-2")
        do {
            let connection = try SQLiteConnection(path: path)
            try connection.configureForLedger()
            try Schema.migrate(connection, upTo: 6)
            let insert = try connection.prepare(CallRow.v7InsertSQL)
            for e in [v6Made, v6Sent] {
                CallRow.bind(e, to: insert)
                insert.bind(Int64(0), at: CallRow.retryParameter)
                try insert.run()
            }
            connection.close()
        }
        let madeNow = entry(3, id: "0000000000000003aaaaaaaaaaaaaaaa", requestId: made + "0000000000000003aaaaaaaaaaaaaaaa")
        let sentNow = entry(4, id: "0000000000000004aaaaaaaaaaaaaaaa", requestId: "client-4")
        // A client sending back an id the gateway made for another call: still "the first" is the original.
        let echoed = entry(5, id: "0000000000000005aaaaaaaaaaaaaaaa", requestId: madeNow.requestId)
        // A client id shaped like a made one that names no row.
        let lookalike = entry(6, id: "0000000000000006aaaaaaaaaaaaaaaa", requestId: made + "ffffffffffffffffffffffffffffffff")
        let writer = try LedgerWriter(path: path)
        #expect(appendAll([madeNow, sentNow, echoed, lookalike], to: writer).isEmpty)
        writer.close()

        let reader = try LedgerReader(path: path)
        for e in [v6Made, v6Sent, madeNow, sentNow, lookalike] {
            #expect(try reader.entry(requestId: e.requestId)?.id == e.id, "\(e.requestId)")
        }
        #expect(try reader.entry(requestId: made + "0000000000000009aaaaaaaaaaaaaaaa") == nil)
        #expect(try reader.entry(requestId: "client-9") == nil)
        #expect(try reader.entry(requestId: "") == nil)
        try reader.withConnection { connection in
            // Only the ids the gateway did not make as `req_` + id are in the index.
            #expect(try connection.scalarInt("""
                SELECT COUNT(*) FROM calls INDEXED BY calls_client_request_id WHERE request_id <> 'req_' || id
                """) == 5)
            let plan = try connection.prepare("EXPLAIN QUERY PLAN " + LedgerReader.requestIdLookup)
            var steps: [String] = []
            while try plan.step() { steps.append(plan.string(at: 3)) }
            #expect(steps.contains { $0.contains("USING INDEX sqlite_autoindex_calls_1 (id=?)") }, "\(steps)")
            #expect(steps.contains { $0.contains("USING INDEX calls_client_request_id") }, "\(steps)")
            #expect(!steps.contains { $0.hasPrefix("SCAN calls") }, "\(steps)")
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

    /// v8 to v11 only add columns: set back for a rollback, a later start adds them once
    /// more without a fault and keeps what was written in them.
    @Test func columnMigrationsCanBeSetBackAndAppliedAgain() throws {
        let dir = try TemporaryDirectory()
        var entry = sampleEntry(1, usage: Usage(inputTokens: 1, cacheWriteTokens: 2, cacheWrite1hTokens: 1, webSearches: 4))
        entry.price?.webSearch = Money(picodollars: 7)
        entry.usage.audioOutputTokens = 1
        entry.price?.audioOutput = Money(picodollars: 9)
        entry.usage.fileSearches = 2
        entry.price?.fileSearch = Money(picodollars: 11)
        let writer = try LedgerWriter(path: dir.path())
        appendAll([entry], to: writer)
        writer.close()
        for version in [10, 9, 8, 7] {
            let connection = try SQLiteConnection(path: dir.path())
            try connection.execute("PRAGMA user_version = \(version)")
            connection.close()
            let reader = try LedgerReader(path: dir.path())
            #expect(try Schema.version(of: reader.connection) == Schema.latestVersion)
            #expect(try reader.entry(id: entry.id) == entry)
        }
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
