import Metering

/// The SQL behind `LedgerReader.report`.
///
/// Money bound: SQLite's `SUM` over INTEGER fails on Int64 overflow, so costs are summed in SQL
/// only per (group, UTC day), and those partial sums are folded into `Money.Total` (Int128) in
/// Swift. The bound is therefore per group and day: one group's spend within one UTC day must
/// stay below Int64.max pico-dollars ($9,223,372.036854775807), else the report fails with
/// sqlite's "integer overflow" (it never silently wraps). Token counts are summed the same way.
///
/// Latency: mean and nearest-rank p95 of `latency_us` over calls that were not refused; the p95
/// is computed in Swift from the latencies of the period (see `percentiles`).
struct ReportAggregation {
    let query: ReportQuery

    private enum KeyPart: Hashable {
        case text(String?)
        case day(Int64)

        var label: String {
            switch self {
            case .text(let value): return value ?? ReportDimension.noneLabel
            case .day(let day): return Day(daysSinceEpoch: Int(day)).description
            }
        }
    }

    private static let refused = "substr(outcome, 1, \(Outcome.refusalPrefix.count)) = '\(Outcome.refusalPrefix)'"
    private static let error = "outcome IN (" +
        Outcome.allCases.filter(\.isError).map { "'\($0.rawValue)'" }.joined(separator: ", ") + ")"
    private static let inRange = "started_at >= ?1 AND started_at < ?2"

    /// The period and the filters, as a WHERE condition; filter values are bound from ?3 on.
    private var selection: String {
        var condition = Self.inRange
        for (index, (dimension, label)) in orderedFilters.enumerated() {
            let expression = Self.expression(dimension)
            condition += label == ReportDimension.noneLabel
                ? " AND \(expression) IS NULL" : " AND \(expression) = ?\(index + 3)"
        }
        return condition
    }

    private var orderedFilters: [(ReportDimension, String)] {
        query.filters.sorted { $0.key.rawValue < $1.key.rawValue }.map { ($0.key, $0.value) }
    }

    private func bindSelection(_ s: Statement) {
        s.bind(query.since, at: 1)
        s.bind(query.until, at: 2)
        for (index, (dimension, label)) in orderedFilters.enumerated() where label != ReportDimension.noneLabel {
            // The day dimension is an integer in SQL: bind the day number of a YYYY-MM-DD label.
            if dimension == .day, let day = Day(label) {
                s.bind(Int64(day.daysSinceEpoch), at: Int32(index + 3))
            } else {
                s.bind(label, at: Int32(index + 3))
            }
        }
    }

    private static func expression(_ dimension: ReportDimension) -> String {
        switch dimension {
        case .user: return "user"
        case .team: return "team"
        case .model: return "COALESCE(model_served, model_requested)"
        case .day: return "(started_at / \(UnixTime.microsPerDay))"
        // 1970-01-01 was a Thursday: shifting by 3 days makes weeks start on Monday.
        case .week:
            return "strftime('%Y-%m-%d', (((started_at / \(UnixTime.microsPerDay)) + 3) / 7 * 7 - 3) * 86400, 'unixepoch')"
        case .month: return "strftime('%Y-%m', started_at / 1000000, 'unixepoch')"
        case .provider: return "provider"
        case .plan: return "plan"
        case .key: return "key_id"
        }
    }

    func run(on connection: SQLiteConnection) throws -> Report {
        let groups = try sums(on: connection)
        let p95s = try percentiles(on: connection)
        var totals = ReportFigures()
        var rows: [ReportRow] = []
        for (key, figures) in groups {
            var figures = figures
            figures.latencyP95Micros = query.groupBy.isEmpty ? p95s.all : p95s.groups[key]
            totals.absorb(figures)
            rows.append(ReportRow(values: key.map(\.label), figures: figures))
        }
        totals.latencyP95Micros = p95s.all
        // Ties (e.g. free calls) by label, so the output is stable from run to run.
        rows.sort { a, b in
            a.cost.picodollars != b.cost.picodollars
                ? a.cost.picodollars > b.cost.picodollars
                : a.values.lexicographicallyPrecedes(b.values)
        }
        return Report(query: query, rows: rows, totals: totals)
    }

    /// Counters per group, summed in SQL per (group, day) and folded here (see the money bound).
    private func sums(on connection: SQLiteConnection) throws -> [[KeyPart]: ReportFigures] {
        let dimensions = query.groupBy
        var groupExpressions = dimensions.map(Self.expression)
        if !dimensions.contains(.day) { groupExpressions.append(Self.expression(.day)) }
        let s = try connection.prepare("""
            SELECT \(groupExpressions.joined(separator: ", ")),
                COUNT(*), SUM(\(Self.refused)), SUM(\(Self.error)),
                SUM(input_tokens), SUM(cached_input_tokens), SUM(cache_write_tokens),
                SUM(output_tokens), SUM(reasoning_tokens), SUM(cost_pd),
                SUM(NOT \(Self.refused)), SUM(CASE WHEN \(Self.refused) THEN 0 ELSE latency_us END)
            FROM calls WHERE \(selection)
            GROUP BY \(groupExpressions.joined(separator: ", "))
            """)
        bindSelection(s)
        var groups: [[KeyPart]: ReportFigures] = [:]
        let first = Int32(groupExpressions.count)
        while try s.step() {
            var f = ReportFigures()
            f.requests = s.int(at: first)
            f.refused = s.int(at: first + 1)
            f.errors = s.int(at: first + 2)
            f.inputTokens = s.int(at: first + 3)
            f.cachedInputTokens = s.int(at: first + 4)
            f.cacheWriteTokens = s.int(at: first + 5)
            f.outputTokens = s.int(at: first + 6)
            f.reasoningTokens = s.int(at: first + 7)
            f.cost = Money.Total(picodollars: Int128(s.int64(at: first + 8)))
            f.timedRequests = s.int(at: first + 9)
            f.latencySumMicros = s.int64(at: first + 10)
            groups[key(s, dimensions), default: ReportFigures()].absorb(f)
        }
        return groups
    }

    /// Nearest-rank p95 latency per group, and over all timed calls. Latencies are collected and
    /// sorted here: measured 4x faster than SQLite's window functions (which sort twice), at the
    /// price of 8 bytes per timed call in memory while the report runs.
    private func percentiles(on connection: SQLiteConnection) throws -> (groups: [[KeyPart]: Int64], all: Int64?) {
        let dimensions = query.groupBy
        let s = try connection.prepare("""
            SELECT \(dimensions.map { Self.expression($0) + ", " }.joined())latency_us
            FROM calls WHERE \(selection) AND NOT \(Self.refused)
            """)
        bindSelection(s)
        var latencies: [[KeyPart]: [Int64]] = [:]
        var all: [Int64] = []
        let column = Int32(dimensions.count)
        while try s.step() {
            let latency = s.int64(at: column)
            all.append(latency)
            if !dimensions.isEmpty { latencies[key(s, dimensions), default: []].append(latency) }
        }
        return (latencies.mapValues { Self.p95(of: $0)! }, Self.p95(of: all))
    }

    /// The value at rank ceil(0.95 n) of the sorted values (nearest-rank definition).
    static func p95(of values: [Int64]) -> Int64? {
        guard !values.isEmpty else { return nil }
        return values.sorted()[(95 * values.count + 99) / 100 - 1]
    }

    private func key(_ s: Statement, _ dimensions: [ReportDimension]) -> [KeyPart] {
        dimensions.enumerated().map { index, dimension in
            dimension == .day ? .day(s.int64(at: Int32(index))) : .text(s.optionalString(at: Int32(index)))
        }
    }
}
