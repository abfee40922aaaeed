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
        ("cache_write_1h_tokens", "int8"), ("price_cache_write_1h", "int8"),
        ("web_searches", "int8"), ("price_web_search", "int8"),
        ("audio_input_tokens", "int8"), ("audio_output_tokens", "int8"),
        ("price_audio_input", "int8"), ("price_audio_output", "int8"),
        ("file_searches", "int8"), ("price_file_search", "int8"),
    ]

    static let selectList = columns.map(\.name).joined(separator: ", ")
    /// Where `started_at` is in `selectList` (the paging key of `forEachCall`).
    static let startedAtColumn = columns.firstIndex { $0.name == "started_at" }!

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
        int { Int64($0.usage.cacheWrite1hTokens) }
        int { $0.price?.cacheWrite1h.picodollars }
        int { Int64($0.usage.webSearches) }
        int { $0.price?.webSearch.picodollars }
        int { Int64($0.usage.audioInputTokens) }
        int { Int64($0.usage.audioOutputTokens) }
        int { $0.price?.audioInput?.picodollars }
        int { $0.price?.audioOutput?.picodollars }
        int { Int64($0.usage.fileSearches) }
        int { $0.price?.fileSearch.picodollars }
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

    /// Reads a row of a SELECT whose first columns are `selectList`. The columns are decoded in
    /// one pass, in order: `makeRandomAccess()` built an array of 46 cells, each with its column
    /// name, for every row, which was most of the cost of copying calls for a report.
    static func decode(_ row: PostgresRow) throws -> LedgerEntry {
        let (id, requestId, startedAt, firstByteAt, endedAt, _, keyId, user, team, dialect, route, provider,
             modelRequested, modelServed, stream, status, outcome,
             inputTokens, cachedInputTokens, cacheWriteTokens, outputTokens, reasoningTokens, usageSource, cost,
             priceId, priceInput, priceCachedInput, priceCacheWrite, priceOutput, ttftMicros, upstreamMicros,
             errorMessage, plan, outputCapRequested, outputCapApplied, requestHash, cacheWrite1hTokens,
             priceCacheWrite1h, webSearches, priceWebSearch, audioInputTokens, audioOutputTokens,
             priceAudioInput, priceAudioOutput, fileSearches, priceFileSearch) = try row.decode((
                String, String, Int64, Int64?, Int64, Int64, String?, String?, String?, String, String, String?,
                String?, String?, Bool, Int32, String,
                Int64, Int64, Int64, Int64, Int64, String, Int64,
                String?, Int64?, Int64?, Int64?, Int64?, Int64?, Int64?,
                String?, String?, Int64?, Int64?, Int64?, Int64, Int64?, Int64, Int64?,
                Int64, Int64, Int64?, Int64?, Int64, Int64?).self)
        func parse<T: RawRepresentable<String>>(_ text: String, _ name: String) throws -> T {
            guard let value = T(rawValue: text) else {
                throw LedgerError.invalidRow("unknown \(name) '\(text)' in call \(id)")
            }
            return value
        }
        return LedgerEntry(
            id: id,
            requestId: requestId,
            startedAt: startedAt,
            firstByteAt: firstByteAt,
            endedAt: endedAt,
            keyId: keyId,
            user: user,
            team: team,
            dialect: try parse(dialect, "dialect"),
            route: route,
            provider: provider,
            modelRequested: modelRequested,
            modelServed: modelServed,
            stream: stream,
            status: Int(status),
            outcome: try parse(outcome, "outcome"),
            usage: Usage(inputTokens: Int(inputTokens), cachedInputTokens: Int(cachedInputTokens),
                         cacheWriteTokens: Int(cacheWriteTokens), cacheWrite1hTokens: Int(cacheWrite1hTokens),
                         outputTokens: Int(outputTokens),
                         reasoningTokens: Int(reasoningTokens), webSearches: Int(webSearches),
                         audioInputTokens: Int(audioInputTokens), audioOutputTokens: Int(audioOutputTokens),
                         fileSearches: Int(fileSearches)),
            usageSource: try parse(usageSource, "usage source"),
            cost: Money(picodollars: cost),
            price: try StoredPrice.decode(id: priceId, input: priceInput ?? 0, cachedInput: priceCachedInput ?? 0,
                                          cacheWrite: priceCacheWrite ?? 0, cacheWrite1h: priceCacheWrite1h,
                                          output: priceOutput ?? 0, webSearch: priceWebSearch,
                                          audioInput: priceAudioInput, audioOutput: priceAudioOutput,
                                          fileSearch: priceFileSearch, callId: id),
            ttftMicros: ttftMicros,
            upstreamMicros: upstreamMicros,
            errorMessage: errorMessage,
            plan: plan,
            outputCapRequested: outputCapRequested.map { Int($0) },
            outputCapApplied: outputCapApplied.map { Int($0) },
            requestHash: requestHash)
    }
}
