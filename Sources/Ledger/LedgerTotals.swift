import Metering

/// Row count and per-column sums of a ledger's calls: what `tokenctl ledger migrate` compares
/// between the source and the copy.
public struct LedgerTotals: Sendable, Hashable {
    public var rows: Int
    public var firstStart: Int64?
    public var lastStart: Int64?
    public var inputTokens: Int128
    public var cachedInputTokens: Int128
    public var cacheWriteTokens: Int128
    public var outputTokens: Int128
    public var reasoningTokens: Int128
    public var cost: Money.Total
    public var latencyMicros: Int128
    /// Of `cacheWriteTokens`, Anthropic's 1-hour writes.
    public var cacheWrite1hTokens: Int128
    public var webSearches: Int128
    /// Of `inputTokens` and `outputTokens`, the audio ones.
    public var audioInputTokens: Int128
    public var audioOutputTokens: Int128
    public var fileSearches: Int128

    public init(rows: Int, firstStart: Int64?, lastStart: Int64?, inputTokens: Int128, cachedInputTokens: Int128,
                cacheWriteTokens: Int128, outputTokens: Int128, reasoningTokens: Int128, cost: Money.Total,
                latencyMicros: Int128, cacheWrite1hTokens: Int128 = 0, webSearches: Int128 = 0,
                audioInputTokens: Int128 = 0, audioOutputTokens: Int128 = 0, fileSearches: Int128 = 0) {
        self.rows = rows
        self.firstStart = firstStart
        self.lastStart = lastStart
        self.inputTokens = inputTokens
        self.cachedInputTokens = cachedInputTokens
        self.cacheWriteTokens = cacheWriteTokens
        self.outputTokens = outputTokens
        self.reasoningTokens = reasoningTokens
        self.cost = cost
        self.latencyMicros = latencyMicros
        self.cacheWrite1hTokens = cacheWrite1hTokens
        self.webSearches = webSearches
        self.audioInputTokens = audioInputTokens
        self.audioOutputTokens = audioOutputTokens
        self.fileSearches = fileSearches
    }

    /// The figures compared, named, in print order.
    public var figures: [(name: String, value: String)] {
        [("rows", "\(rows)"), ("input_tokens", "\(inputTokens)"), ("cached_input_tokens", "\(cachedInputTokens)"),
         ("cache_write_tokens", "\(cacheWriteTokens)"), ("output_tokens", "\(outputTokens)"),
         ("reasoning_tokens", "\(reasoningTokens)"), ("cost_pd", "\(cost.picodollars)"), ("latency_us", "\(latencyMicros)"),
         ("cache_write_1h_tokens", "\(cacheWrite1hTokens)"), ("web_searches", "\(webSearches)"),
         ("audio_input_tokens", "\(audioInputTokens)"), ("audio_output_tokens", "\(audioOutputTokens)"),
         ("file_searches", "\(fileSearches)")]
    }

    /// The summed columns, in the order of the `*Tokens`, `cost`, `latencyMicros`,
    /// `cacheWrite1hTokens`, `webSearches`, audio and `fileSearches` fields.
    public static let summedColumns = ["input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
                                  "reasoning_tokens", "cost_pd", "latency_us", "cache_write_1h_tokens", "web_searches",
                                  "audio_input_tokens", "audio_output_tokens", "file_searches"]
}

extension LedgerReader {
    /// Count and sums of every call. One scan; sums exact (Int128, accumulated per row).
    public func totals() throws -> LedgerTotals {
        try withConnection { connection in
            let s = try connection.prepare("SELECT started_at, \(LedgerTotals.summedColumns.joined(separator: ", ")) FROM calls")
            var t = LedgerTotals(rows: 0, firstStart: nil, lastStart: nil, inputTokens: 0, cachedInputTokens: 0,
                                 cacheWriteTokens: 0, outputTokens: 0, reasoningTokens: 0, cost: Money.Total(), latencyMicros: 0)
            var cost: Int128 = 0
            while try s.step() {
                let start = s.int64(at: 0)
                t.rows += 1
                t.firstStart = min(t.firstStart ?? start, start)
                t.lastStart = max(t.lastStart ?? start, start)
                t.inputTokens += Int128(s.int64(at: 1))
                t.cachedInputTokens += Int128(s.int64(at: 2))
                t.cacheWriteTokens += Int128(s.int64(at: 3))
                t.outputTokens += Int128(s.int64(at: 4))
                t.reasoningTokens += Int128(s.int64(at: 5))
                cost += Int128(s.int64(at: 6))
                t.latencyMicros += Int128(s.int64(at: 7))
                t.cacheWrite1hTokens += Int128(s.int64(at: 8))
                t.webSearches += Int128(s.int64(at: 9))
                t.audioInputTokens += Int128(s.int64(at: 10))
                t.audioOutputTokens += Int128(s.int64(at: 11))
                t.fileSearches += Int128(s.int64(at: 12))
            }
            t.cost = Money.Total(picodollars: cost)
            return t
        }
    }
}
