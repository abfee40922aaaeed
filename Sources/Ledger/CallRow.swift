import Metering

/// The mapping between `LedgerEntry` and a row of `calls`: one column list, used by both the
/// INSERT and the SELECTs, so the two cannot drift apart.
enum CallRow {
    static let columns = [
        "id", "request_id", "started_at", "first_byte_at", "ended_at", "latency_us",
        "key_id", "user", "team", "dialect", "route", "provider", "model_requested", "model_served",
        "stream", "status", "outcome",
        "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
        "usage_source", "cost_pd",
        "price_id", "price_input", "price_cached_input", "price_cache_write", "price_output",
        "ttft_us", "upstream_us", "error_message",
        "plan", "output_cap_requested", "output_cap_applied", "request_hash",
        "cache_write_1h_tokens", "price_cache_write_1h", "web_searches", "price_web_search",
        "audio_input_tokens", "audio_output_tokens", "price_audio_input", "price_audio_output",
        "file_searches", "price_file_search",
    ]

    /// Every column of `columns` (bound by `bind`), then the retry flag at `retryParameter`, which
    /// the writer decides as it inserts.
    static let insertSQL =
        "INSERT INTO calls (\(columns.joined(separator: ", ")), retry) VALUES (" +
        (1...retryParameter).map { "?\($0)" }.joined(separator: ", ") + ")"
    static let retryParameter = Int32(columns.count + 1)

    static let selectList = columns.joined(separator: ", ")

    /// Binds every column of `entry` to an INSERT prepared from `insertSQL`.
    static func bind(_ entry: LedgerEntry, to s: Statement) {
        s.bind(entry.id, at: 1)
        s.bind(entry.requestId, at: 2)
        s.bind(entry.startedAt, at: 3)
        s.bind(entry.firstByteAt, at: 4)
        s.bind(entry.endedAt, at: 5)
        s.bind(entry.latencyMicros, at: 6)
        s.bind(entry.keyId, at: 7)
        s.bind(entry.user, at: 8)
        s.bind(entry.team, at: 9)
        s.bind(entry.dialect.rawValue, at: 10)
        s.bind(entry.route, at: 11)
        s.bind(entry.provider, at: 12)
        s.bind(entry.modelRequested, at: 13)
        s.bind(entry.modelServed, at: 14)
        s.bind(entry.stream, at: 15)
        s.bind(entry.status, at: 16)
        s.bind(entry.outcome.rawValue, at: 17)
        s.bind(entry.usage.inputTokens, at: 18)
        s.bind(entry.usage.cachedInputTokens, at: 19)
        s.bind(entry.usage.cacheWriteTokens, at: 20)
        s.bind(entry.usage.outputTokens, at: 21)
        s.bind(entry.usage.reasoningTokens, at: 22)
        s.bind(entry.usageSource.rawValue, at: 23)
        s.bind(entry.cost.picodollars, at: 24)
        s.bind(entry.priceId, at: 25)
        s.bind(entry.price?.input.picodollars, at: 26)
        s.bind(entry.price?.cachedInput.picodollars, at: 27)
        s.bind(entry.price?.cacheWrite.picodollars, at: 28)
        s.bind(entry.price?.output.picodollars, at: 29)
        s.bind(entry.ttftMicros, at: 30)
        s.bind(entry.upstreamMicros, at: 31)
        s.bind(entry.errorMessage, at: 32)
        s.bind(entry.plan, at: 33)
        s.bind(entry.outputCapRequested, at: 34)
        s.bind(entry.outputCapApplied, at: 35)
        s.bind(entry.requestHash, at: 36)
        s.bind(entry.usage.cacheWrite1hTokens, at: 37)
        s.bind(entry.price?.cacheWrite1h.picodollars, at: 38)
        s.bind(entry.usage.webSearches, at: 39)
        s.bind(entry.price?.webSearch.picodollars, at: 40)
        s.bind(entry.usage.audioInputTokens, at: 41)
        s.bind(entry.usage.audioOutputTokens, at: 42)
        s.bind(entry.price?.audioInput?.picodollars, at: 43)
        s.bind(entry.price?.audioOutput?.picodollars, at: 44)
        s.bind(entry.usage.fileSearches, at: 45)
        s.bind(entry.price?.fileSearch.picodollars, at: 46)
    }

    /// Reads the current row of a SELECT whose first columns are `selectList`.
    static func decode(_ s: Statement) throws -> LedgerEntry {
        let id = s.string(at: 0)
        func parse<T: RawRepresentable<String>>(_ type: T.Type, _ column: Int32, _ name: String) throws -> T {
            let text = s.string(at: column)
            guard let value = T(rawValue: text) else {
                throw LedgerError.invalidRow("unknown \(name) '\(text)' in call \(id)")
            }
            return value
        }
        return LedgerEntry(
            id: id,
            requestId: s.string(at: 1),
            startedAt: s.int64(at: 2),
            firstByteAt: s.optionalInt64(at: 3),
            endedAt: s.int64(at: 4),
            keyId: s.optionalString(at: 6),
            user: s.optionalString(at: 7),
            team: s.optionalString(at: 8),
            dialect: try parse(Dialect.self, 9, "dialect"),
            route: s.string(at: 10),
            provider: s.optionalString(at: 11),
            modelRequested: s.optionalString(at: 12),
            modelServed: s.optionalString(at: 13),
            stream: s.bool(at: 14),
            status: s.int(at: 15),
            outcome: try parse(Outcome.self, 16, "outcome"),
            usage: Usage(inputTokens: s.int(at: 17), cachedInputTokens: s.int(at: 18),
                         cacheWriteTokens: s.int(at: 19), cacheWrite1hTokens: s.int(at: 36), outputTokens: s.int(at: 20),
                         reasoningTokens: s.int(at: 21), webSearches: s.int(at: 38),
                         audioInputTokens: s.int(at: 40), audioOutputTokens: s.int(at: 41),
                         fileSearches: s.int(at: 44)),
            usageSource: try parse(UsageSource.self, 22, "usage source"),
            cost: Money(picodollars: s.int64(at: 23)),
            price: try decodePrice(s, callId: id),
            ttftMicros: s.optionalInt64(at: 29),
            upstreamMicros: s.optionalInt64(at: 30),
            errorMessage: s.optionalString(at: 31),
            plan: s.optionalString(at: 32),
            outputCapRequested: s.optionalInt64(at: 33).map(Int.init),
            outputCapApplied: s.optionalInt64(at: 34).map(Int.init),
            requestHash: s.optionalInt64(at: 35))
    }

    private static func decodePrice(_ s: Statement, callId: String) throws -> ModelPrice? {
        func money(_ column: Int32) -> Int64 { s.optionalInt64(at: column) ?? 0 }
        return try StoredPrice.decode(id: s.optionalString(at: 24), input: money(25), cachedInput: money(26),
                                      cacheWrite: money(27), cacheWrite1h: s.optionalInt64(at: 37), output: money(28),
                                      webSearch: s.optionalInt64(at: 39), audioInput: s.optionalInt64(at: 42),
                                      audioOutput: s.optionalInt64(at: 43), fileSearch: s.optionalInt64(at: 45),
                                      callId: callId)
    }
}

/// The price a row was costed with, as stored: `price_id` and its per-token prices in pico-dollars
/// (a row from before 1-hour cache writes had their own price has none: twice the input, as then
/// charged to no row, since no 1-hour write was counted; one without audio prices, the text's; one
/// without a file search fee, the default, as then charged to no row).
/// Shared by every ledger backend so they read prices back alike.
public enum StoredPrice {
    public static func decode(id priceId: String?, input: Int64, cachedInput: Int64, cacheWrite: Int64,
                              cacheWrite1h: Int64?, output: Int64, webSearch: Int64? = nil,
                              audioInput: Int64? = nil, audioOutput: Int64? = nil, fileSearch: Int64? = nil,
                              callId: String) throws -> ModelPrice? {
        guard let priceId else { return nil }
        // The id is `<pattern>@<day>`, with ` <tier>` and ` above-<tokens>` after the pattern for
        // a variant, the tier's word ending `us-only` for a US-only price (`fast+us-only`, or the
        // word alone); a pattern may itself contain '@' (not a space), the day never does.
        let malformed = LedgerError.invalidRow("malformed price id '\(priceId)' in call \(callId)")
        guard let at = priceId.lastIndex(of: "@"), let day = Day(String(priceId[priceId.index(after: at)...])) else {
            throw malformed
        }
        var words = priceId[..<at].split(separator: " ", omittingEmptySubsequences: false)
        let pattern = String(words.removeFirst())
        guard words.count <= 2 else { throw malformed }
        var tier: String?, above: Int?, runsInUSOnly = false
        for word in words {
            if word.hasPrefix("above-") {
                guard above == nil, let n = Int(word.dropFirst(6)), n >= 0 else { throw malformed }
                above = n
            } else {
                guard tier == nil, !runsInUSOnly, above == nil, !word.isEmpty else { throw malformed }
                let usOnlyWord = ModelPrice.usOnlyWord
                var name = Substring(word)
                if word == usOnlyWord {
                    (runsInUSOnly, name) = (true, "")
                } else if word.hasSuffix("+" + usOnlyWord) {
                    runsInUSOnly = true
                    name = word.dropLast(usOnlyWord.count + 1)
                    // What `ModelPrice.id` writes: a tier's name before the word.
                    guard !name.isEmpty, !name.hasSuffix("+"), name != usOnlyWord else { throw malformed }
                }
                tier = name.isEmpty ? nil : String(name)
            }
        }
        return ModelPrice(model: ModelPattern(pattern), effectiveFrom: day,
                          input: Money(picodollars: input), cachedInput: Money(picodollars: cachedInput),
                          cacheWrite: Money(picodollars: cacheWrite), cacheWrite1h: cacheWrite1h.map(Money.init(picodollars:)),
                          output: Money(picodollars: output), webSearch: webSearch.map(Money.init(picodollars:)),
                          fileSearch: fileSearch.map(Money.init(picodollars:)),
                          audioInput: audioInput.map(Money.init(picodollars:)),
                          audioOutput: audioOutput.map(Money.init(picodollars:)),
                          tier: tier, aboveInputTokens: above, runsInUSOnly: runsInUSOnly)
    }
}
