import Ledger
import Metering
import PostgresNIO

/// The mapping between `LedgerEntry` and a row of the PostgreSQL `calls` table: one column list
/// for the batch INSERT and the SELECTs, in the order of SQLite's `CallRow`.
enum PostgresCallRow {
    /// Column names and their PostgreSQL types (for the `unnest` casts).
    static let columns: [(name: String, type: String)] = [
        ("id", "text"), ("request_id", "text"), ("started_at", "int8"), ("first_byte_at", "int8"),
        ("ended_at", "int8"), ("latency_us", "int8"), ("key_id", "text"), ("\"user\"", "text"), ("team", "text"),
        ("dialect", "text"), ("route", "text"), ("provider", "text"), ("model_requested", "text"),
        ("model_served", "text"), ("stream", "bool"), ("status", "int4"), ("outcome", "text"),
        ("input_tokens", "int8"), ("cached_input_tokens", "int8"), ("cache_write_tokens", "int8"),
        ("output_tokens", "int8"), ("reasoning_tokens", "int8"), ("usage_source", "text"), ("cost_pd", "int8"),
        ("price_id", "text"), ("price_input", "int8"), ("price_cached_input", "int8"),
        ("price_cache_write", "int8"), ("price_output", "int8"), ("ttft_us", "int8"), ("upstream_us", "int8"),
        ("error_message", "text"), ("plan", "text"), ("output_cap_requested", "int8"),
        ("output_cap_applied", "int8"), ("request_hash", "int8"),
    ]

    static let selectList = columns.map(\.name).joined(separator: ", ")

    /// Inserts every row of the batch in one statement (one round trip, one array per column);
    /// rows whose id and start already exist are skipped, and the statement returns the ids it inserted.
    static let insertSQL = """
        INSERT INTO calls (\(selectList))
        SELECT * FROM unnest(\(columns.indices.map { "$\($0 + 1)::\(columns[$0].type)[]" }.joined(separator: ", ")))
        ON CONFLICT DO NOTHING RETURNING id
        """

    static func insert(_ entries: [LedgerEntry]) -> PostgresQuery {
        var binds = PostgresBindings(capacity: columns.count)
        func text(_ value: (LedgerEntry) -> String?) { binds.append(NullableArray(entries.map { value($0).map(storable) })) }
        func int(_ value: (LedgerEntry) -> Int64?) { binds.append(NullableArray(entries.map(value))) }
        text { $0.id }
        text { $0.requestId }
        int { $0.startedAt }
        int { $0.firstByteAt }
        int { $0.endedAt }
        int { $0.latencyMicros }
        text { $0.keyId }
        text { $0.user }
        text { $0.team }
        text { $0.dialect.rawValue }
        text { $0.route }
        text { $0.provider }
        text { $0.modelRequested }
        text { $0.modelServed }
        binds.append(NullableArray<Bool>(entries.map(\.stream)))
        binds.append(NullableArray<Int32>(entries.map { Int32(clamping: $0.status) }))
        text { $0.outcome.rawValue }
        int { Int64($0.usage.inputTokens) }
        int { Int64($0.usage.cachedInputTokens) }
        int { Int64($0.usage.cacheWriteTokens) }
        int { Int64($0.usage.outputTokens) }
        int { Int64($0.usage.reasoningTokens) }
        text { $0.usageSource.rawValue }
        int { $0.cost.picodollars }
        text { $0.priceId }
        int { $0.price?.input.picodollars }
        int { $0.price?.cachedInput.picodollars }
        int { $0.price?.cacheWrite.picodollars }
        int { $0.price?.output.picodollars }
        int { $0.ttftMicros }
        int { $0.upstreamMicros }
        text { $0.errorMessage }
        text { $0.plan }
        int { $0.outputCapRequested.map(Int64.init) }
        int { $0.outputCapApplied.map(Int64.init) }
        int { $0.requestHash }
        return PostgresQuery(unsafeSQL: insertSQL, binds: binds)
    }

    /// `text` as a PostgreSQL text value can hold it: PostgreSQL refuses U+0000 in text (SQLSTATE
    /// 22021, failing the whole batch), and a caller can put one in what the ledger keeps (a
    /// requested model, an upstream's error message), so each NUL is stored as U+FFFD, the
    /// replacement character (docs/postgres.md).
    static func storable(_ text: String) -> String {
        guard text.utf8.contains(0) else { return text }
        var scalars = String.UnicodeScalarView()
        for scalar in text.unicodeScalars { scalars.append(scalar == "\u{0}" ? "\u{FFFD}" : scalar) }
        return String(scalars)
    }

    /// Reads a row of a SELECT whose first columns are `selectList`.
    static func decode(_ row: PostgresRow) throws -> LedgerEntry {
        let r = row.makeRandomAccess()
        let id: String = try r.value(0)
        func parse<T: RawRepresentable<String>>(_ type: T.Type, _ column: Int, _ name: String) throws -> T {
            let text: String = try r.value(column)
            guard let value = T(rawValue: text) else {
                throw LedgerError.invalidRow("unknown \(name) '\(text)' in call \(id)")
            }
            return value
        }
        func price(_ column: Int) throws -> Int64 { try r.value(column, as: Int64?.self) ?? 0 }
        return LedgerEntry(
            id: id,
            requestId: try r.value(1),
            startedAt: try r.value(2),
            firstByteAt: try r.value(3),
            endedAt: try r.value(4),
            keyId: try r.value(6),
            user: try r.value(7),
            team: try r.value(8),
            dialect: try parse(Dialect.self, 9, "dialect"),
            route: try r.value(10),
            provider: try r.value(11),
            modelRequested: try r.value(12),
            modelServed: try r.value(13),
            stream: try r.value(14),
            status: Int(try r.value(15, as: Int32.self)),
            outcome: try parse(Outcome.self, 16, "outcome"),
            usage: Usage(inputTokens: Int(try r.value(17, as: Int64.self)),
                         cachedInputTokens: Int(try r.value(18, as: Int64.self)),
                         cacheWriteTokens: Int(try r.value(19, as: Int64.self)),
                         outputTokens: Int(try r.value(20, as: Int64.self)),
                         reasoningTokens: Int(try r.value(21, as: Int64.self))),
            usageSource: try parse(UsageSource.self, 22, "usage source"),
            cost: Money(picodollars: try r.value(23)),
            price: try StoredPrice.decode(id: try r.value(24), input: price(25), cachedInput: price(26),
                                          cacheWrite: price(27), output: price(28), callId: id),
            ttftMicros: try r.value(29),
            upstreamMicros: try r.value(30),
            errorMessage: try r.value(31),
            plan: try r.value(32),
            outputCapRequested: try r.value(33, as: Int64?.self).map { Int($0) },
            outputCapApplied: try r.value(34, as: Int64?.self).map { Int($0) },
            requestHash: try r.value(35))
    }
}
