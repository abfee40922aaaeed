import Ledger
import Metering
import PostgresNIO

/// The PostgreSQL ledger's schema as an ordered list of migrations, and its monthly partitions.
///
/// `tokenctl_meta.schema_version` holds the number of migrations applied. Every replica migrates
/// at start-up; each migration runs in one transaction holding `pg_advisory_xact_lock`, and
/// re-reads the version under it, so replicas starting together apply each migration once.
/// Append new migrations at the end; never edit a released one.
///
/// `calls` has the columns of SQLite's table with the same meaning (money in pico-dollars as
/// int8, times in Unix µs), plus `seq`, the append order (SQLite's rowid), and is partitioned by
/// UTC month of `started_at` (`calls_YYYY_MM`, plus `calls_default` for anything outside them).
/// `retry` is stored false: reports recompute retries with SQLite's engine (see the reader).
enum PostgresSchema {
    /// The lock every schema change takes (an arbitrary constant: "tokenctl" in ASCII, truncated).
    static let lockKey: Int64 = 0x746f_6b65_6e63_746c

    static let migrations: [[String]] = [
        // v1: calls (partitioned), api keys and their change stamp.
        [
            """
            CREATE TABLE IF NOT EXISTS tokenctl_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)
            """,
            "CREATE SEQUENCE IF NOT EXISTS calls_seq",
            """
            CREATE TABLE calls (
                id TEXT NOT NULL,
                seq BIGINT NOT NULL DEFAULT nextval('calls_seq'),
                request_id TEXT NOT NULL,
                started_at BIGINT NOT NULL,
                first_byte_at BIGINT,
                ended_at BIGINT NOT NULL,
                latency_us BIGINT NOT NULL,
                key_id TEXT,
                "user" TEXT,
                team TEXT,
                dialect TEXT NOT NULL,
                route TEXT NOT NULL,
                provider TEXT,
                model_requested TEXT,
                model_served TEXT,
                stream BOOLEAN NOT NULL,
                status INTEGER NOT NULL,
                outcome TEXT NOT NULL,
                input_tokens BIGINT NOT NULL,
                cached_input_tokens BIGINT NOT NULL,
                cache_write_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                reasoning_tokens BIGINT NOT NULL,
                usage_source TEXT NOT NULL,
                cost_pd BIGINT NOT NULL,
                price_id TEXT,
                price_input BIGINT,
                price_cached_input BIGINT,
                price_cache_write BIGINT,
                price_output BIGINT,
                ttft_us BIGINT,
                upstream_us BIGINT,
                error_message TEXT,
                plan TEXT,
                output_cap_requested BIGINT,
                output_cap_applied BIGINT,
                request_hash BIGINT,
                retry BOOLEAN NOT NULL DEFAULT false,
                PRIMARY KEY (id, started_at)
            ) PARTITION BY RANGE (started_at)
            """,
            "CREATE TABLE calls_default PARTITION OF calls DEFAULT",
            "CREATE INDEX calls_started_at ON calls (started_at, seq)",
            "CREATE INDEX calls_user_started_at ON calls (\"user\", started_at)",
            "CREATE INDEX calls_request_id ON calls (request_id)",
            """
            CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                secret_hash TEXT UNIQUE NOT NULL,
                "user" TEXT NOT NULL,
                team TEXT,
                created_at BIGINT,
                revoked_at BIGINT,
                admin BOOLEAN NOT NULL DEFAULT false
            )
            """,
            "INSERT INTO tokenctl_meta (name, value) VALUES ('api_keys_stamp', 0) ON CONFLICT DO NOTHING",
            // Any change to the keys, by tokenctl or by hand, moves the stamp the servers poll.
            """
            CREATE OR REPLACE FUNCTION tokenctl_bump_api_keys_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE tokenctl_meta SET value = value + 1 WHERE name = 'api_keys_stamp';
                RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER api_keys_stamp AFTER INSERT OR UPDATE OR DELETE ON api_keys
            FOR EACH STATEMENT EXECUTE FUNCTION tokenctl_bump_api_keys_stamp()
            """,
        ],
        // v2 (issue 6: retention): what `ledger prune` keeps of the calls it deletes (see
        // `PostgresLedgerPrune`). The rollup cells of the pruned calls, with SQLite's cell
        // columns (spelt out: a released migration must not change with shared code) and the
        // key as values; and the fingerprinted calls of the retry window before the prune date,
        // which decide whether the first calls after it are retries. `tokenctl_meta.pruned_before`
        // (absent: never pruned) is where raw calls start.
        [
            """
            CREATE TABLE rollup_cells_pruned (
                level TEXT NOT NULL,
                span TEXT NOT NULL,
                number BIGINT NOT NULL,
                "user" TEXT, team TEXT, model TEXT, provider TEXT, plan TEXT, key_id TEXT,
                requests BIGINT NOT NULL, refused BIGINT NOT NULL, errors BIGINT NOT NULL,
                input_tokens BIGINT NOT NULL, cached_input_tokens BIGINT NOT NULL,
                cache_write_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
                reasoning_tokens BIGINT NOT NULL, cost_pd BIGINT NOT NULL, cost_pd_high BIGINT NOT NULL,
                timed BIGINT NOT NULL, latency_sum_us BIGINT NOT NULL, retries BIGINT NOT NULL,
                retry_cost_pd BIGINT NOT NULL, retry_cost_pd_high BIGINT NOT NULL,
                quarters BIGINT NOT NULL, quarters_high BIGINT NOT NULL,
                latency_hist BYTEA NOT NULL, ttft_hist BYTEA NOT NULL
            )
            """,
            "CREATE INDEX rollup_cells_pruned_number ON rollup_cells_pruned (span, number)",
            "CREATE TABLE calls_retry_context (LIKE calls INCLUDING DEFAULTS)",
        ],
        // v3: a team's shared budget counter starts from the ledger's sum of the team's calls in
        // the period (`tokenctl_quota_ledger_spend`), read while the org counter is locked: an
        // index keeps that from scanning the whole period and stalling every admission.
        [
            "CREATE INDEX calls_team_started_at ON calls (team, started_at)",
        ],
        // v4: Anthropic's 1-hour cache writes (part of `cache_write_tokens`) and their price, as
        // SQLite's v8; `calls_retry_context` keeps the columns of `calls`. Only columns an older
        // replica's inserts leave to their defaults: set back to 3 for a rollback, the database
        // serves that release, and a later start adds nothing twice.
        [
            "ALTER TABLE calls ADD COLUMN IF NOT EXISTS cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE calls ADD COLUMN IF NOT EXISTS price_cache_write_1h BIGINT",
            "ALTER TABLE calls_retry_context ADD COLUMN IF NOT EXISTS cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE calls_retry_context ADD COLUMN IF NOT EXISTS price_cache_write_1h BIGINT",
        ],
        // v5: web searches (a fee each) and that fee, as SQLite's v9; rollback as v4 (set back to 4).
        [
            "ALTER TABLE calls ADD COLUMN IF NOT EXISTS web_searches BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE calls ADD COLUMN IF NOT EXISTS price_web_search BIGINT",
            "ALTER TABLE calls_retry_context ADD COLUMN IF NOT EXISTS web_searches BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE calls_retry_context ADD COLUMN IF NOT EXISTS price_web_search BIGINT",
        ],
        // v6: audio tokens (parts of input and output) and their prices, as SQLite's v10;
        // rollback as v4 (set back to 5).
        ["calls", "calls_retry_context"].flatMap { table in [
            "ALTER TABLE \(table) ADD COLUMN IF NOT EXISTS audio_input_tokens BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE \(table) ADD COLUMN IF NOT EXISTS audio_output_tokens BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE \(table) ADD COLUMN IF NOT EXISTS price_audio_input BIGINT",
            "ALTER TABLE \(table) ADD COLUMN IF NOT EXISTS price_audio_output BIGINT",
        ] },
        // v7: file search calls and their fee, as SQLite's v11; rollback as v4 (set back to 6).
        ["calls", "calls_retry_context"].flatMap { table in [
            "ALTER TABLE \(table) ADD COLUMN IF NOT EXISTS file_searches BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE \(table) ADD COLUMN IF NOT EXISTS price_file_search BIGINT",
        ] },
        // v8: the pruned calls' cells count their searches, as SQLite's v12 cells (cells an
        // older release stored hold none); rollback as v4 (set back to 7).
        [
            "ALTER TABLE rollup_cells_pruned ADD COLUMN IF NOT EXISTS web_searches BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE rollup_cells_pruned ADD COLUMN IF NOT EXISTS file_searches BIGINT NOT NULL DEFAULT 0",
        ],
    ]

    static var latestVersion: Int { migrations.count }

    /// Brings the database up to date and makes sure the partitions around `now` exist.
    static func prepare(_ session: PostgresSession, now: Int64 = UnixTime.nowMicros()) throws {
        let current = try version(session)
        if current > latestVersion {
            throw LedgerError.schemaTooNew(found: current, supported: latestVersion)
        }
        for (index, statements) in migrations.enumerated() where index + 1 > current {
            try session.transaction {
                try lock(session)
                guard try version(session) <= index else { return }
                for statement in statements { try session.execute(statement) }
                try session.query("""
                    INSERT INTO tokenctl_meta (name, value) VALUES ('schema_version', \(Int64(index + 1)))
                    ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value
                    """, context: "record schema version")
            }
        }
        let month = UTCMonth(containing: now)
        try ensurePartitions(session, from: month.advanced(by: -1), through: month.advanced(by: 2))
    }

    /// Creates the monthly partitions `from ... through` that do not exist yet. A month some of
    /// whose rows already sit in the default partition is left there (PostgreSQL refuses to
    /// create it), which costs speed, never correctness.
    /// `lockTimeoutMillis`: give up (throwing) rather than wait longer for the lock on `calls`
    /// (which queues every insert behind the DDL meanwhile).
    static func ensurePartitions(_ session: PostgresSession, from first: UTCMonth, through last: UTCMonth,
                                 lockTimeoutMillis: Int? = nil) throws {
        guard first <= last else { return }
        try session.transaction {
            if let lockTimeoutMillis { try session.execute("SET LOCAL lock_timeout = \(lockTimeoutMillis)") }
            try lock(session)
            var month = first
            while month <= last {
                let start = month.startMicros, end = month.advanced(by: 1).startMicros
                let name = "calls_\(month.name.replacingOccurrences(of: "-", with: "_"))"
                let exists = try tableExists(session, name)
                let stranded = try !exists && session.scalar("""
                    SELECT 1 FROM calls_default WHERE started_at >= \(start) AND started_at < \(end) LIMIT 1
                    """, as: Int32.self, context: "check default partition") != nil
                if !exists && !stranded {
                    try session.execute("""
                        CREATE TABLE IF NOT EXISTS \(name) PARTITION OF calls FOR VALUES FROM (\(start)) TO (\(end))
                        """)
                }
                month = month.advanced(by: 1)
            }
        }
    }

    static func version(_ session: PostgresSession) throws -> Int {
        guard try tableExists(session, "tokenctl_meta") else { return 0 }
        return Int(try session.scalar("SELECT value FROM tokenctl_meta WHERE name = 'schema_version'",
                                      as: Int64.self, context: "read schema version") ?? 0)
    }

    /// Reads the catalog with the statement's snapshot: `to_regclass` may answer from the
    /// session's cache, which can miss a table another replica created while we waited for the lock.
    static func tableExists(_ session: PostgresSession, _ name: String) throws -> Bool {
        try session.scalar("""
            SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = \(name)
            """, as: Int32.self, context: "look up table \(name)") != nil
    }

    private static func lock(_ session: PostgresSession) throws {
        try session.query("SELECT pg_advisory_xact_lock(\(lockKey))", context: "take the schema lock")
    }
}

/// A calendar month in UTC: the unit of the `calls` partitions.
struct UTCMonth: Hashable, Comparable, Sendable {
    /// Months since January 1970 (negative before).
    var index: Int

    init(index: Int) { self.index = index }

    init(containing micros: Int64) {
        let day = Day(unixSeconds: micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000)
        let parts = day.description.split(separator: "-").compactMap { Int($0) }
        index = (parts[0] - 1970) * 12 + parts[1] - 1
    }

    var year: Int { 1970 + (index >= 0 ? index / 12 : (index - 11) / 12) }
    var month: Int { index - (year - 1970) * 12 + 1 }

    /// `YYYY-MM`.
    var name: String { "\(year)-\(month < 10 ? "0" : "")\(month)" }

    var startMicros: Int64 { Day("\(name)-01")!.unixSeconds * 1_000_000 }

    func advanced(by months: Int) -> UTCMonth { UTCMonth(index: index + months) }

    static func < (a: UTCMonth, b: UTCMonth) -> Bool { a.index < b.index }
}
