import Foundation
import Ledger
import Metering

/// One figure column of a report, shared by every format so names and values cannot drift apart.
struct MetricColumn: Sendable {
    enum Kind: Sendable {
        /// A count: a JSON number.
        case count
        /// Dollars with six decimals: `$` in the table, a JSON string (money must not pass through a double).
        case dollars
        /// An exact integer that may exceed 2^53 (pico-dollar sums): a JSON string for the same reason.
        case exactInteger
        /// Milliseconds with three decimals (exact to the µs): a JSON number, or null when absent.
        case milliseconds
        /// A percentage with two decimals: a JSON number, `%` in the table.
        case percent
    }

    /// What a value may depend on besides the row's own figures.
    struct Context: Sendable {
        /// The report's total cost (for the share of total).
        var totalCost: Money.Total
        /// The row is `Report.top`'s `(others)` row: figures that do not add up are absent.
        var folded = false
    }

    /// Stable snake_case name used in CSV headers and JSON keys.
    let name: String
    /// Short heading in the table, markdown and html; nil: only in CSV and JSON.
    let heading: String?
    let kind: Kind
    /// The value as text, or nil when the figure is absent (no timed calls, no requests).
    let value: @Sendable (ReportFigures, Context) -> String?

    /// Every column, in CSV/JSON order. New columns are appended, so positions stay stable.
    static let all: [MetricColumn] = [
        count("requests", "requests", \.requests),
        count("refused", "refused", \.refused),
        count("errors", "errors", \.errors),
        count("input_tokens", "input", \.inputTokens),
        count("cached_input_tokens", "cached in", \.cachedInputTokens),
        count("cache_write_tokens", "cache write", \.cacheWriteTokens),
        count("output_tokens", "output", \.outputTokens),
        count("reasoning_tokens", "reasoning", \.reasoningTokens),
        MetricColumn(name: "cost_usd", heading: "cost", kind: .dollars) { f, _ in f.cost.formatted(decimals: 6) },
        MetricColumn(name: "cost_picodollars", heading: nil, kind: .exactInteger) { f, _ in String(f.cost.picodollars) },
        milliseconds("latency_mean_ms", "mean ms", \.latencyMeanMicros),
        milliseconds("latency_p95_ms", "p95 ms", \.latencyP95Micros),
        milliseconds("latency_p50_ms", "p50 ms", \.latencyP50Micros),
        milliseconds("ttft_p50_ms", "ttft p50", \.ttftP50Micros),
        MetricColumn(name: "cost_share_pct", heading: "share", kind: .percent) { f, c in
            Ratio.percent(f.cost.picodollars, of: c.totalCost.picodollars)
        },
        MetricColumn(name: "cost_per_request_usd", heading: "$/req", kind: .dollars) { f, _ in
            f.requests == 0 ? nil : Money.Total(picodollars: f.cost.picodollars / Int128(f.requests)).formatted(decimals: 6)
        },
        MetricColumn(name: "active_days", heading: "days", kind: .count) { f, c in c.folded ? nil : String(f.activeDays) },
        count("retries", "retries", \.retries),
        MetricColumn(name: "retry_cost_usd", heading: "retry cost", kind: .dollars) { f, _ in f.retryCost.formatted(decimals: 6) },
        MetricColumn(name: "retry_cost_picodollars", heading: nil, kind: .exactInteger) { f, _ in
            String(f.retryCost.picodollars)
        },
        count("web_searches", "web searches", \.webSearches),
        count("file_searches", "file searches", \.fileSearches),
    ]

    static func named(_ name: String) -> MetricColumn? { all.first { $0.name == name } }

    private static func count(_ name: String, _ heading: String, _ path: KeyPath<ReportFigures, Int> & Sendable) -> MetricColumn {
        MetricColumn(name: name, heading: heading, kind: .count) { f, _ in String(f[keyPath: path]) }
    }

    private static func milliseconds(_ name: String, _ heading: String,
                                     _ path: KeyPath<ReportFigures, Int64?> & Sendable) -> MetricColumn {
        MetricColumn(name: name, heading: heading, kind: .milliseconds) { f, _ in f[keyPath: path].map(Decimal3.milliseconds) }
    }
}

/// Which figure columns the table, markdown and html show (CSV and JSON always carry all), by
/// their CSV/JSON names, in display order.
public struct ReportColumns: Sendable, Hashable {
    public let names: [String]

    /// Every column with a heading, in reading order (money after tokens, latency after money).
    public static let all = ReportColumns(checked: [
        "requests", "refused", "errors", "input_tokens", "cached_input_tokens", "cache_write_tokens",
        "output_tokens", "reasoning_tokens", "web_searches", "file_searches", "cost_usd", "cost_share_pct",
        "cost_per_request_usd",
        "latency_mean_ms", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "active_days", "retries",
        "retry_cost_usd",
    ])

    /// The terminal table's default: fits a 140-column terminal for typical names and amounts.
    public static let table = ReportColumns(checked: [
        "requests", "refused", "errors", "input_tokens", "output_tokens", "cost_usd", "cost_share_pct",
        "cost_per_request_usd", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "active_days",
    ])

    public struct Unknown: Error, CustomStringConvertible {
        public var name: String
        public var description: String {
            "unknown column '\(name)'; columns: all, or a comma-separated list of " + ReportColumns.all.names.joined(separator: ", ")
        }
    }

    private init(checked names: [String]) { self.names = names }

    /// `all`, or names separated by commas (`requests,cost_usd,latency_p95_ms`).
    public init(parsing text: String) throws {
        if text == "all" { self = .all; return }
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.isEmpty else { throw Unknown(name: text) }
        for name in names where !Self.all.names.contains(name) { throw Unknown(name: name) }
        self.names = names
    }

    var metrics: [MetricColumn] { names.compactMap(MetricColumn.named) }
}

/// Exact integer-to-decimal text, without floating point.
enum Decimal3 {
    /// Microseconds as milliseconds with three decimals: 12345 → "12.345".
    static func milliseconds(_ micros: Int64) -> String {
        let sign = micros < 0 ? "-" : ""
        let magnitude = micros.magnitude
        let fraction = String(magnitude % 1_000)
        return sign + String(magnitude / 1_000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}

/// Shares as exact decimal text.
enum Ratio {
    /// `part / whole` as a percentage with two decimals, rounded half up ("12.35"); nil when
    /// `whole` is zero. Both non-negative.
    static func percent(_ part: Int128, of whole: Int128) -> String? {
        guard whole > 0 else { return nil }
        let hundredths = (part * 10_000 * 2 + whole) / (whole * 2)
        let fraction = String(hundredths % 100)
        return String(hundredths / 100) + "." + (fraction.count == 1 ? "0" : "") + fraction
    }

    static func percent(_ part: Int, of whole: Int) -> String? { percent(Int128(part), of: Int128(whole)) }
}

/// Unix microseconds as ISO 8601, exact: `2025-01-01T00:00:00Z` in UTC, or local time with its
/// offset in another zone (`2026-11-01T00:00:00+01:00`), with `.ffffff` only when needed.
enum Timestamp {
    static func iso8601(micros: Int64, in timeZone: TimeZone? = nil) -> String {
        let offsetSeconds = timeZone.map { Int64($0.secondsFromGMT(for: Date(timeIntervalSince1970: Double(micros) / 1e6))) } ?? 0
        let local = micros + offsetSeconds * 1_000_000
        let seconds = local >= 0 ? local / 1_000_000 : (local - 999_999) / 1_000_000
        let fraction = local - seconds * 1_000_000
        let day = Day(unixSeconds: seconds)
        let ofDay = seconds - day.unixSeconds
        var text = "\(day)T\(pad(ofDay / 3_600, 2)):\(pad(ofDay / 60 % 60, 2)):\(pad(ofDay % 60, 2))"
        if fraction != 0 { text += "." + pad(fraction, 6) }
        guard let timeZone, !ZoneName.isUTC(timeZone) else { return text + "Z" }
        let sign = offsetSeconds < 0 ? "-" : "+"
        let magnitude = abs(offsetSeconds)
        return text + sign + pad(magnitude / 3_600, 2) + ":" + pad(magnitude / 60 % 60, 2)
    }

    /// The period as a heading: `from 2026-11-01T00:00:00+01:00 to … (Europe/Berlin)`.
    static func span(_ query: ReportQuery) -> String {
        let zone = query.timeZone
        // A report from the ledger's beginning starts at 0: not a date anyone asked for.
        let from = query.since <= 0 ? "from the first call" : "from \(iso8601(micros: query.since, in: zone))"
        var text = "\(from) to \(iso8601(micros: query.until, in: zone))"
        if !ZoneName.isUTC(zone) { text += " (\(zone.identifier))" }
        return text
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
}

/// Time zone names as reports print them.
public enum ZoneName {
    /// Foundation on Linux names `TimeZone(identifier: "UTC")` "GMT": both print as UTC.
    public static func isUTC(_ zone: TimeZone) -> Bool { zone.identifier == "UTC" || zone.identifier == "GMT" }

    public static func of(_ zone: TimeZone) -> String { isUTC(zone) ? "UTC" : zone.identifier }
}
