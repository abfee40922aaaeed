import Metering

/// The dimensions a rollup keeps of a call (everything a report groups or filters by, except time).
struct RollupKey: Hashable, Sendable {
    var user: String?
    var team: String?
    /// Served model, else requested (the report's model label).
    var model: String?
    var provider: String?
    var plan: String?
    var keyId: String?

    init(user: String?, team: String?, model: String?, provider: String?, plan: String?, keyId: String?) {
        self.user = user
        self.team = team
        self.model = model
        self.provider = provider
        self.plan = plan
        self.keyId = keyId
    }

    init(_ entry: LedgerEntry) {
        self.init(user: entry.user, team: entry.team, model: entry.modelServed ?? entry.modelRequested,
                  provider: entry.provider, plan: entry.plan, keyId: entry.keyId)
    }
}

/// The time spans rollups are kept at. A call belongs to the span containing `started_at` (UTC).
enum RollupSpan: CaseIterable {
    case hour, day

    var micros: Int64 { self == .hour ? 3_600_000_000 : UnixTime.microsPerDay }
    var column: String { self == .hour ? "hour" : "day" }
    static let quarterMicros: Int64 = 900_000_000

    /// The span number (hours or days since 1970, floored) of an instant.
    func number(of micros: Int64) -> Int64 { floorDiv(micros, self.micros) }

    /// Quarter hour of `micros` within its span (0..<4 for hours, 0..<96 for days).
    func quarter(of micros: Int64) -> Int { Int(floorDiv(micros - number(of: micros) * self.micros, Self.quarterMicros)) }
}

func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

/// The figures of a call, as rollups and raw-row reports need them.
struct RollupFacts {
    var startedAt: Int64
    var outcome: String
    var inputTokens: Int
    var cachedInputTokens: Int
    var cacheWriteTokens: Int
    var outputTokens: Int
    var reasoningTokens: Int
    var webSearches: Int
    var fileSearches: Int
    var cost: Int64
    var latency: Int64
    var ttft: Int64?
    var retry: Bool

    init(_ entry: LedgerEntry, retry: Bool) {
        startedAt = entry.startedAt
        outcome = entry.outcome.rawValue
        inputTokens = entry.usage.inputTokens
        cachedInputTokens = entry.usage.cachedInputTokens
        cacheWriteTokens = entry.usage.cacheWriteTokens
        outputTokens = entry.usage.outputTokens
        reasoningTokens = entry.usage.reasoningTokens
        webSearches = entry.usage.webSearches
        fileSearches = entry.usage.fileSearches
        cost = entry.cost.picodollars
        latency = entry.latencyMicros
        ttft = entry.ttftMicros
        self.retry = retry
    }

    init(startedAt: Int64, outcome: String, inputTokens: Int, cachedInputTokens: Int, cacheWriteTokens: Int,
         outputTokens: Int, reasoningTokens: Int, webSearches: Int, fileSearches: Int, cost: Int64, latency: Int64,
         ttft: Int64?, retry: Bool) {
        self.startedAt = startedAt
        self.outcome = outcome
        self.inputTokens = inputTokens
        self.cachedInputTokens = cachedInputTokens
        self.cacheWriteTokens = cacheWriteTokens
        self.outputTokens = outputTokens
        self.reasoningTokens = reasoningTokens
        self.webSearches = webSearches
        self.fileSearches = fileSearches
        self.cost = cost
        self.latency = latency
        self.ttft = ttft
        self.retry = retry
    }

    var isRefusal: Bool { outcome.hasPrefix(Outcome.refusalPrefix) }
    var isError: Bool { Outcome(rawValue: outcome)?.isError ?? false }

    /// The columns of `calls` that `call(_:from:)` reads: the key's, then the facts'.
    /// `keyless` puts NULLs in the key's places; `searches: false` zeros in the search counts'
    /// (for a migration that runs before schema v9 and v11 add them).
    static func callColumns(keyless: Bool = false, searches: Bool = true) -> String {
        let key = keyless ? "NULL, NULL, NULL, NULL, NULL, NULL"
            : "user, team, COALESCE(model_served, model_requested), provider, plan, key_id"
        return """
            started_at, \(key), outcome, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens,
            reasoning_tokens, cost_pd, latency_us, ttft_us, retry, \(searches ? "web_searches, file_searches" : "0, 0")
            """
    }

    /// A call's rollup key and facts from `callColumns`, starting at column `c`.
    static func call(_ s: Statement, from c: Int32 = 0) -> (key: RollupKey, facts: RollupFacts) {
        (RollupKey(user: s.optionalString(at: c + 1), team: s.optionalString(at: c + 2),
                   model: s.optionalString(at: c + 3), provider: s.optionalString(at: c + 4),
                   plan: s.optionalString(at: c + 5), keyId: s.optionalString(at: c + 6)),
         RollupFacts(startedAt: s.int64(at: c), outcome: s.string(at: c + 7), inputTokens: s.int(at: c + 8),
                     cachedInputTokens: s.int(at: c + 9), cacheWriteTokens: s.int(at: c + 10),
                     outputTokens: s.int(at: c + 11), reasoningTokens: s.int(at: c + 12),
                     webSearches: s.int(at: c + 17), fileSearches: s.int(at: c + 18), cost: s.int64(at: c + 13),
                     latency: s.int64(at: c + 14), ttft: s.optionalInt64(at: c + 15), retry: s.bool(at: c + 16)))
    }
}

/// Sums of the calls of one rollup key within one span: what `rollup_hours` / `rollup_days` hold.
/// Money is an exact Int128 (stored as two integers), so a cell has no overflow bound.
struct RollupCell: Sendable, Hashable {
    var requests = 0
    var refused = 0
    var errors = 0
    var inputTokens = 0
    var cachedInputTokens = 0
    var cacheWriteTokens = 0
    var outputTokens = 0
    var reasoningTokens = 0
    var cost: Int128 = 0
    var timed = 0
    var latencySum: Int64 = 0
    var retries = 0
    var retryCost: Int128 = 0
    /// Latencies of the timed (not refused) calls, TTFTs of the calls that had one.
    var latency = SparseHistogram()
    var ttft = SparseHistogram()
    /// Bit q: a call started in quarter hour q of the span (0..<48 here, 48..<96 in `quartersHigh`).
    var quarters: Int64 = 0
    var quartersHigh: Int64 = 0
    /// Searches billed a fee each (schema v12; see `SearchRollups`).
    var webSearches = 0
    var fileSearches = 0

    /// Adds one call (histograms are added separately, in bulk: see `RollupCellBuilder`).
    mutating func count(_ facts: RollupFacts, quarter: Int) {
        requests += 1
        if facts.isRefusal { refused += 1 } else { timed += 1; latencySum += facts.latency }
        if facts.isError { errors += 1 }
        inputTokens += facts.inputTokens
        cachedInputTokens += facts.cachedInputTokens
        cacheWriteTokens += facts.cacheWriteTokens
        outputTokens += facts.outputTokens
        reasoningTokens += facts.reasoningTokens
        webSearches += facts.webSearches
        fileSearches += facts.fileSearches
        cost += Int128(facts.cost)
        if facts.retry { retries += 1; retryCost += Int128(facts.cost) }
        if quarter < 48 { quarters |= 1 << Int64(quarter) } else { quartersHigh |= 1 << Int64(quarter - 48) }
    }

    mutating func absorb(_ other: RollupCell) {
        requests += other.requests
        refused += other.refused
        errors += other.errors
        inputTokens += other.inputTokens
        cachedInputTokens += other.cachedInputTokens
        cacheWriteTokens += other.cacheWriteTokens
        outputTokens += other.outputTokens
        reasoningTokens += other.reasoningTokens
        cost += other.cost
        timed += other.timed
        latencySum += other.latencySum
        retries += other.retries
        retryCost += other.retryCost
        latency = latency.merged(with: other.latency)
        ttft = ttft.merged(with: other.ttft)
        quarters |= other.quarters
        quartersHigh |= other.quartersHigh
        webSearches += other.webSearches
        fileSearches += other.fileSearches
    }
}

/// Cells of a batch being built: counters per call, histogram values gathered and bucketed once.
struct RollupCellBuilder {
    var cell = RollupCell()
    var latencies: [Int64] = []
    var ttfts: [Int64] = []

    mutating func add(_ facts: RollupFacts, quarter: Int) {
        cell.count(facts, quarter: quarter)
        if !facts.isRefusal { latencies.append(facts.latency) }
        if let ttft = facts.ttft { ttfts.append(ttft) }
    }

    /// A call already counted that turned out to be a retry (an earlier call arrived late).
    mutating func markRetry(cost: Int64) {
        cell.retries += 1
        cell.retryCost += Int128(cost)
    }

    func built() -> RollupCell {
        var result = cell
        result.latency = SparseHistogram(values: latencies)
        result.ttft = SparseHistogram(values: ttfts)
        return result
    }
}

/// The table of a level and span.
struct CellTable: Hashable {
    var level: RollupLevel
    var span: RollupSpan

    static let count = 4

    /// 0..<`count`, so per-table state lives in arrays (hashing a table per cell was a visible cost).
    var ordinal: Int { (level == .detailed ? 0 : 2) + (span == .hour ? 0 : 1) }
}

/// Where a cell lives: its level and span's table, the span number and the level's key id.
struct CellAddress: Hashable {
    var level: RollupLevel
    var span: RollupSpan
    var number: Int64
    var key: Int64

    var table: CellTable { CellTable(level: level, span: span) }
}

extension Int128 {
    /// Low and high 64 bits, as stored (`cost_pd` holds the low bits: the exact sum whenever it fits).
    var storedParts: (low: Int64, high: Int64) {
        (Int64(truncatingIfNeeded: self), Int64(truncatingIfNeeded: self >> 64))
    }

    init(storedLow low: Int64, high: Int64) {
        self = (Int128(high) << 64) | Int128(UInt64(bitPattern: low))
    }
}
