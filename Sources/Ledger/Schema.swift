/// The ledger's schema as an ordered list of migrations. `PRAGMA user_version` holds the number
/// of migrations applied; opening a ledger applies the missing ones, each in its own transaction.
/// Append new migrations at the end; never edit a released one.
enum Schema {
    struct Migration {
        let version: Int
        let sql: String
        /// Work SQL alone cannot do (e.g. rollups with histograms), run after `sql` in the same transaction.
        var backfill: (@Sendable (SQLiteConnection) throws -> Void)? = nil

        /// Adds columns to `calls` unless the first is there: a ledger set back to the version
        /// before for a rollback (which kept them) takes the migration again without a fault.
        static func addingColumns(version: Int, _ columns: [String]) -> Migration {
            Migration(version: version, sql: "SELECT 1", backfill: { try addColumns(columns, to: "calls", on: $0) })
        }

        /// Adds `columns` (definitions) to `table` unless the first is there.
        static func addColumns(_ columns: [String], to table: String, on connection: SQLiteConnection) throws {
            let marker = String(columns[0].prefix { $0 != " " })
            let present = try connection.scalarInt(
                "SELECT COUNT(*) FROM pragma_table_info('\(table)') WHERE name = '\(marker)'") ?? 0
            guard present == 0 else { return }
            try connection.execute(columns.map { "ALTER TABLE \(table) ADD COLUMN \($0);" }.joined(separator: "\n"))
        }
    }

    static let migrations: [Migration] = [
        // v1: one row per call. Money and prices in pico-dollars (INTEGER, exact); times in Unix µs.
        Migration(version: 1, sql: """
            CREATE TABLE calls (
                id TEXT NOT NULL UNIQUE,
                request_id TEXT NOT NULL,
                started_at INTEGER NOT NULL,
                first_byte_at INTEGER,
                ended_at INTEGER NOT NULL,
                latency_us INTEGER NOT NULL,
                key_id TEXT,
                user TEXT,
                team TEXT,
                dialect TEXT NOT NULL,
                route TEXT NOT NULL,
                provider TEXT,
                model_requested TEXT,
                model_served TEXT,
                stream INTEGER NOT NULL,
                status INTEGER NOT NULL,
                outcome TEXT NOT NULL,
                input_tokens INTEGER NOT NULL,
                cached_input_tokens INTEGER NOT NULL,
                cache_write_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                reasoning_tokens INTEGER NOT NULL,
                usage_source TEXT NOT NULL,
                cost_pd INTEGER NOT NULL,
                price_id TEXT,
                price_input INTEGER,
                price_cached_input INTEGER,
                price_cache_write INTEGER,
                price_output INTEGER,
                ttft_us INTEGER,
                upstream_us INTEGER,
                error_message TEXT
            );
            CREATE INDEX calls_started_at ON calls(started_at);
            CREATE INDEX calls_user_started_at ON calls(user, started_at);
            CREATE INDEX calls_request_id ON calls(request_id);
            """),
        // v2: client API keys (secrets stored hashed by Policy) and a change stamp that triggers
        // bump on every key change, so a server can poll one integer instead of reloading keys.
        Migration(version: 2, sql: """
            CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                secret_hash TEXT UNIQUE NOT NULL,
                user TEXT NOT NULL,
                team TEXT,
                created_at INTEGER,
                revoked_at INTEGER
            );
            CREATE TABLE meta (
                name TEXT PRIMARY KEY,
                value INTEGER NOT NULL
            );
            INSERT INTO meta(name, value) VALUES ('api_keys_stamp', 0);
            CREATE TRIGGER api_keys_stamp_insert AFTER INSERT ON api_keys BEGIN
                UPDATE meta SET value = value + 1 WHERE name = 'api_keys_stamp';
            END;
            CREATE TRIGGER api_keys_stamp_update AFTER UPDATE ON api_keys BEGIN
                UPDATE meta SET value = value + 1 WHERE name = 'api_keys_stamp';
            END;
            CREATE TRIGGER api_keys_stamp_delete AFTER DELETE ON api_keys BEGIN
                UPDATE meta SET value = value + 1 WHERE name = 'api_keys_stamp';
            END;
            """),
        // v3: plans (issue: policies). The plan the payer was on, and the output cap the client
        // asked for and the one sent upstream (clamped or injected), so refusals and clamps can
        // be explained and simulated later.
        Migration(version: 3, sql: """
            ALTER TABLE calls ADD COLUMN plan TEXT;
            ALTER TABLE calls ADD COLUMN output_cap_requested INTEGER;
            ALTER TABLE calls ADD COLUMN output_cap_applied INTEGER;
            """),
        // v4 (issue: reports): a fingerprint of the request body, so reports can tell retries
        // and regenerations (same user, same body, shortly after); and admin keys, which may
        // read the dashboard and its API.
        Migration(version: 4, sql: """
            ALTER TABLE calls ADD COLUMN request_hash INTEGER;
            ALTER TABLE api_keys ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
            """),
        // v5 (issue: reports): a retry flag per call, and rollups per (UTC hour | UTC day, key)
        // kept by the writer in the same transaction as the calls, so a month's report reads
        // cells instead of millions of rows. Costs are exact Int128 sums: cost_pd holds the low
        // 64 bits, cost_pd_high the high ones (0 unless a cell passes $9.2M). Histograms are
        // `LatencyBuckets` in `SparseHistogram` encoding. Existing rows are backfilled.
        Migration(version: 5, sql: """
            ALTER TABLE calls ADD COLUMN retry INTEGER NOT NULL DEFAULT 0;
            CREATE TABLE rollup_keys (
                id INTEGER PRIMARY KEY,
                user TEXT, team TEXT, model TEXT, provider TEXT, plan TEXT, key_id TEXT
            );
            \(["hour", "day"].map { span in """
                CREATE TABLE rollup_\(span)s (
                    \(span) INTEGER NOT NULL,
                    key INTEGER NOT NULL,
                    requests INTEGER NOT NULL, refused INTEGER NOT NULL, errors INTEGER NOT NULL,
                    input_tokens INTEGER NOT NULL, cached_input_tokens INTEGER NOT NULL,
                    cache_write_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
                    reasoning_tokens INTEGER NOT NULL, cost_pd INTEGER NOT NULL, cost_pd_high INTEGER NOT NULL,
                    timed INTEGER NOT NULL, latency_sum_us INTEGER NOT NULL, retries INTEGER NOT NULL,
                    retry_cost_pd INTEGER NOT NULL, retry_cost_pd_high INTEGER NOT NULL,
                    latency_hist BLOB NOT NULL, ttft_hist BLOB NOT NULL,
                    quarters INTEGER NOT NULL, quarters_high INTEGER NOT NULL,
                    PRIMARY KEY (\(span), key)
                ) WITHOUT ROWID;
                """ }.joined(separator: "\n"))
            """, backfill: RollupBackfill.detailed),
        // v6 (issue: reports): payer-level rollups, per (UTC hour | UTC day, user, team, plan)
        // without model, provider and key: a few times fewer cells than v5's, for every report
        // that neither groups nor filters by those. Same cell columns as v5's tables (spelt out
        // again: a released migration must not change with shared code). Filled from v5's cells.
        // From v6 the writer adds calls to the cells in batches: `meta.rollups_through` is the
        // last rowid the cells hold (reports read later calls raw; see `PendingRollups`).
        Migration(version: 6, sql: """
            CREATE TABLE rollup_payers (
                id INTEGER PRIMARY KEY,
                user TEXT, team TEXT, plan TEXT
            );
            \(["hour", "day"].map { span in """
                CREATE TABLE rollup_payer_\(span)s (
                    \(span) INTEGER NOT NULL,
                    key INTEGER NOT NULL,
                    requests INTEGER NOT NULL, refused INTEGER NOT NULL, errors INTEGER NOT NULL,
                    input_tokens INTEGER NOT NULL, cached_input_tokens INTEGER NOT NULL,
                    cache_write_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
                    reasoning_tokens INTEGER NOT NULL, cost_pd INTEGER NOT NULL, cost_pd_high INTEGER NOT NULL,
                    timed INTEGER NOT NULL, latency_sum_us INTEGER NOT NULL, retries INTEGER NOT NULL,
                    retry_cost_pd INTEGER NOT NULL, retry_cost_pd_high INTEGER NOT NULL,
                    latency_hist BLOB NOT NULL, ttft_hist BLOB NOT NULL,
                    quarters INTEGER NOT NULL, quarters_high INTEGER NOT NULL,
                    PRIMARY KEY (\(span), key)
                ) WITHOUT ROWID;
                """ }.joined(separator: "\n"))
            INSERT INTO meta(name, value) SELECT 'rollups_through', IFNULL(MAX(rowid), 0) FROM calls;
            """, backfill: PayerRollupBackfill.run),
        // v7: `request_id` indexed only where a client sent it. One the gateway made is 'req_'
        // and the row's id (`LedgerEntry.madeRequestIDPrefix`), found through the index of `id`:
        // one index update fewer per call (2-4 µs of the commit here). Rows before v7 made
        // theirs otherwise and stay in the index.
        Migration(version: 7, sql: """
            DROP INDEX calls_request_id;
            CREATE INDEX calls_client_request_id ON calls(request_id) WHERE request_id <> 'req_' || id;
            """),
        // v8: Anthropic's 1-hour cache writes have a price of their own (twice the input, against
        // 1.25 times for 5-minute ones): their count, part of `cache_write_tokens`, and that price.
        // Only columns an older build's inserts leave to their defaults: set back to v7 for a
        // rollback, the ledger serves that build, and a later start adds nothing twice.
        .addingColumns(version: 8, [
            "cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0", "price_cache_write_1h INTEGER",
        ]),
        // v9: server-side web searches are billed a fee each: their count and that fee. As v8,
        // only columns an older build's inserts leave to their defaults (rollback: set back to v8).
        .addingColumns(version: 9, ["web_searches INTEGER NOT NULL DEFAULT 0", "price_web_search INTEGER"]),
        // v10: OpenAI's audio tokens have prices of their own: their counts, parts of
        // `input_tokens` and `output_tokens`, and those prices (NULL: the text price). As v8.
        .addingColumns(version: 10, [
            "audio_input_tokens INTEGER NOT NULL DEFAULT 0", "audio_output_tokens INTEGER NOT NULL DEFAULT 0",
            "price_audio_input INTEGER", "price_audio_output INTEGER",
        ]),
        // v11: calls of the Responses API's file search tool are billed a fee each: their count
        // and that fee. As v8.
        .addingColumns(version: 11, ["file_searches INTEGER NOT NULL DEFAULT 0", "price_file_search INTEGER"]),
        // v12: the rollup cells count the searches too, so reports show them: the columns on
        // the four cell tables and `meta.search_rollups_through` at 0, from which every open
        // counts the searches of the calls the cells hold (`SearchRollups`). An older build's
        // upserts leave the columns to their defaults: rollback as v8 (set back to 11).
        Migration(version: 12, sql: "SELECT 1", backfill: SearchRollups.addCountColumnsAndMark),
    ]

    static var latestVersion: Int { migrations.last?.version ?? 0 }

    /// Brings the database up to `target` (default: latest). Safe to call from several processes
    /// at once: the version is re-read inside a write transaction before each migration.
    static func migrate(_ connection: SQLiteConnection, upTo target: Int = latestVersion) throws {
        let current = try version(of: connection)
        if current > latestVersion {
            throw LedgerError.schemaTooNew(found: current, supported: latestVersion)
        }
        // The common case (already current) takes no write lock, so a report does not wait on the server.
        if current < target {
            for migration in migrations where migration.version <= target {
                try connection.execute("BEGIN IMMEDIATE")
                do {
                    if try version(of: connection) < migration.version {
                        try connection.execute(migration.sql)
                        try migration.backfill?(connection)
                        try connection.execute("PRAGMA user_version = \(migration.version)")
                    }
                    try connection.execute("COMMIT")
                } catch {
                    try? connection.execute("ROLLBACK")
                    throw error
                }
            }
        }
        // Not a migration: the cells' search counts, after an older build rolled calls up (the
        // write lock only then).
        if target >= SearchRollups.schemaVersion { try SearchRollups.catchUp(connection) }
    }

    static func version(of connection: SQLiteConnection) throws -> Int {
        Int(try connection.scalarInt("PRAGMA user_version") ?? 0)
    }
}
