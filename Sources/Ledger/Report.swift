import Foundation
import Metering

/// What a report groups calls by.
public enum ReportDimension: String, Sendable, Hashable, CaseIterable, Codable {
    /// The payer's user (the key's, or the end user a service key named); "(none)" when the call
    /// had none (refused before auth).
    case user
    /// The principal's team; "(none)" when unset.
    case team
    /// The model served, else the model requested; "(none)" when neither is known.
    case model
    /// The day the call started in the query's time zone, `YYYY-MM-DD`.
    case day
    /// The week (Monday to Sunday, in the query's time zone) the call started, as its Monday `YYYY-MM-DD`.
    case week
    /// The month the call started in the query's time zone, `YYYY-MM`.
    case month
    /// The provider the call was routed to; "(none)" for calls refused before routing.
    case provider
    /// The payer's plan; "(none)" for rows from before plans or calls refused before auth.
    case plan
    /// The API key id the call was made with.
    case key

    /// Label of a NULL user, team or model.
    public static let noneLabel = "(none)"

    /// Labels reports give rows of their own (`noneLabel`, `Report.othersLabel`): no user or team
    /// may be named so, or its calls would merge with those rows.
    public static func isReservedLabel(_ name: String) -> Bool {
        name == noneLabel || name == Report.othersLabel
    }

    /// The longest user or team name, in characters.
    public static let longestName = 128

    /// A name fit to bill under: not empty, at most `longestName` characters, no surrounding
    /// white space (" alice" and "alice" would be two payers; "(none) " would pass for a
    /// report's own label) and none of the characters `hides` names.
    public static func isWellFormedName(_ name: String) -> Bool {
        let scalars = name.unicodeScalars
        guard let first = scalars.first, let last = scalars.last, !first.properties.isWhitespace,
              !last.properties.isWhitespace, name.count <= longestName else { return false }
        return !scalars.contains(where: hides)
    }

    /// Why `name` cannot be the user or team (`noun`) a key bills, or nil when it can, for
    /// messages that put the field's name first (`--user`, `user`).
    public static func problem(asKeyOwner name: String, noun: String) -> String? {
        // Names are billing identities: " alice" and "alice" must not become two payers.
        guard isWellFormedName(name) else {
            return "must be a non-empty name without surrounding spaces, control or invisible format characters (at most \(longestName) characters)"
        }
        guard !isReservedLabel(name) else {
            return "'\(name)' is reserved: reports use it to label calls without a \(noun), or folded rows"
        }
        return nil
    }

    /// A character a name must not carry, and reports write as an escape: a control character
    /// (C0, DEL, C1: it can repaint a terminal), a line or paragraph separator (it forges a line)
    /// or a format character (the bidi overrides that reorder what is shown; a zero-width space:
    /// "alice\u{200B}" would be a second payer that reads as alice).
    public static func hides(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029: return true
        case 0x20...0x7E: return false
        default: return scalar.properties.generalCategory == .format
        }
    }
}

/// Which figures a report computes.
public enum ReportFigureSet: String, Sendable, Hashable, CaseIterable, Codable {
    /// Every figure.
    case all
    /// Every figure but the percentiles (`latencyP50Micros`, `latencyP95Micros`, `ttftP50Micros`
    /// are nil): they are what costs most (merging histograms), and a caller that only needs
    /// sums and counts (e.g. cost per day and user) is several times faster without them.
    case sums
}

/// Which calls a report covers and how it groups them.
public struct ReportQuery: Sendable, Hashable {
    /// Unix microseconds; calls with `since <= startedAt < until` are counted.
    public var since: Int64
    public var until: Int64
    /// Grouping, outermost first; duplicates are dropped. Empty: one row for everything.
    public var groupBy: [ReportDimension]
    /// Only calls whose dimension has this label (e.g. `.user: "alice"`, `.model: "gpt-4o"`);
    /// `ReportDimension.noneLabel` selects calls without a value.
    public var filters: [ReportDimension: String]
    /// The zone of the day, week and month dimensions and of active days (default UTC).
    public var timeZone: TimeZone = TimeZone(identifier: "UTC")!
    /// Which figures to compute (default all; `.sums` skips the percentiles).
    public var figures: ReportFigureSet = .all
    /// A call is a retry if the same user sent the same body this recently (default 120 s).
    public static let retryWindowMicros: Int64 = 120 * 1_000_000

    public init(since: Int64, until: Int64, groupBy: [ReportDimension] = [],
                filters: [ReportDimension: String] = [:]) {
        self.since = since
        self.until = until
        self.filters = filters
        var seen = Set<ReportDimension>()
        self.groupBy = groupBy.filter { seen.insert($0).inserted }
    }

    /// The whole UTC days `from ... through` (inclusive), e.g. one month.
    public init(days from: Day, through last: Day, groupBy: [ReportDimension] = []) {
        self.init(since: from.unixSeconds * UnixTime.microsPerSecond,
                  until: (last.unixSeconds + 86_400) * UnixTime.microsPerSecond, groupBy: groupBy)
    }
}

/// Counters of a group of calls (or of all calls in the report).
public struct ReportFigures: Sendable, Hashable {
    /// All calls, refusals included.
    public var requests = 0
    /// Calls whose outcome starts with `refused_`.
    public var refused = 0
    /// Calls with an error outcome (`Outcome.isError`).
    public var errors = 0
    public var inputTokens = 0
    public var cachedInputTokens = 0
    public var cacheWriteTokens = 0
    public var outputTokens = 0
    public var reasoningTokens = 0
    /// Input, cached, cache-write and output tokens (reasoning is part of output): what token
    /// budgets count.
    public var totalTokens: Int { inputTokens + cachedInputTokens + cacheWriteTokens + outputTokens }
    /// Exact sum of the calls' costs.
    public var cost = Money.Total()
    /// Calls the latency figures cover: every call that was not refused (refusals never reach a
    /// provider, so their near-zero latency would hide the providers' own).
    public var timedRequests = 0
    /// Sum of those calls' latencies (µs); the mean is derived from it.
    public var latencySumMicros: Int64 = 0
    /// 95th percentile of those calls' total latency (µs); nil when none. Percentiles are
    /// nearest-rank over log-spaced buckets, within `LatencyBuckets.relativeError` (1.9 %) of the
    /// exact nearest-rank value (exact below 128 µs).
    public var latencyP95Micros: Int64?
    /// Median of the same latencies (µs), same definition; nil when none.
    public var latencyP50Micros: Int64?
    /// Median time to first byte (µs) of the calls that got one, same definition; nil when none.
    public var ttftP50Micros: Int64?
    /// Distinct days (in the query's time zone) with at least one call.
    public var activeDays = 0
    /// Calls that repeat an earlier call: same user, same request fingerprint, started within
    /// `ReportQuery.retryWindowMicros` of that call. Their cost is what users' regenerations and
    /// retries cost.
    public var retries = 0
    public var retryCost = Money.Total()
    /// Server-side web searches and file search calls, billed a fee each (part of `cost`).
    /// Calls pruned before the ledger's schema v12 count none (see `SearchRollups`).
    public var webSearches = 0
    public var fileSearches = 0

    public init() {}

    /// Mean total latency (µs) of the timed calls, rounded half up; nil when none.
    public var latencyMeanMicros: Int64? {
        timedRequests == 0 ? nil : (latencySumMicros + Int64(timedRequests) / 2) / Int64(timedRequests)
    }

    /// Adds counters and sums (not percentiles or active days, which do not add up).
    public mutating func absorb(_ other: ReportFigures) {
        requests += other.requests
        refused += other.refused
        errors += other.errors
        inputTokens += other.inputTokens
        cachedInputTokens += other.cachedInputTokens
        cacheWriteTokens += other.cacheWriteTokens
        outputTokens += other.outputTokens
        reasoningTokens += other.reasoningTokens
        cost.picodollars += other.cost.picodollars
        timedRequests += other.timedRequests
        latencySumMicros += other.latencySumMicros
        retries += other.retries
        retryCost.picodollars += other.retryCost.picodollars
        webSearches += other.webSearches
        fileSearches += other.fileSearches
    }
}

/// One group of a report: its dimension labels and its figures.
@dynamicMemberLookup
public struct ReportRow: Sendable, Hashable {
    /// Labels in the order of `ReportQuery.groupBy`.
    public var values: [String]
    public var figures: ReportFigures

    public init(values: [String], figures: ReportFigures) {
        self.values = values
        self.figures = figures
    }

    public subscript<T>(dynamicMember path: KeyPath<ReportFigures, T>) -> T { figures[keyPath: path] }
}

/// The result of a report query: rows by cost (highest first), and totals over all of them.
public struct Report: Sendable, Hashable {
    public var query: ReportQuery
    public var rows: [ReportRow]
    /// Sums of every row's counters (exactly); percentiles over all calls of the report; active
    /// days are the distinct days with any call.
    public var totals: ReportFigures

    public init(query: ReportQuery, rows: [ReportRow], totals: ReportFigures) {
        self.query = query
        self.rows = rows
        self.totals = totals
    }

    /// The label of `dimension` in `row`, or nil if the report does not group by it.
    public func value(of dimension: ReportDimension, in row: ReportRow) -> String? {
        query.groupBy.firstIndex(of: dimension).map { row.values[$0] }
    }
}

extension Report {
    /// Label of the row that gathers the groups past `top(_:)`.
    public static let othersLabel = "(others)"

    /// The `count` costliest rows, the rest folded into one `(others)` row, so the rows still add
    /// up to the totals exactly. The folded row carries only figures that add up: its counters,
    /// tokens, costs, retries and mean latency are exact sums; it has no percentiles (nil) and no
    /// active days (0), since neither can be derived from the folded rows' own values.
    public func top(_ count: Int) -> Report {
        guard count >= 0, rows.count > count else { return self }
        // The costliest rows, kept in the report's order (days stay in date order).
        let costliest = Set(rows.indices.sorted {
            rows[$0].cost.picodollars != rows[$1].cost.picodollars ? rows[$0].cost.picodollars > rows[$1].cost.picodollars : $0 < $1
        }.prefix(count))
        var others = ReportFigures()
        for index in rows.indices where !costliest.contains(index) { others.absorb(rows[index].figures) }
        others.latencyP95Micros = nil
        others.latencyP50Micros = nil
        others.ttftP50Micros = nil
        others.activeDays = 0
        let folded = ReportRow(values: query.groupBy.map { _ in Report.othersLabel }, figures: others)
        return Report(query: query, rows: rows.indices.filter(costliest.contains).map { rows[$0] } + [folded], totals: totals)
    }
}
