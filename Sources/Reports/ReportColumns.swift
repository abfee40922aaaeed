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
    }

    /// Stable snake_case name used in CSV headers and JSON keys.
    let name: String
    /// Short heading in the table; nil hides the column there.
    let heading: String?
    let kind: Kind
    /// The value as text, or nil when the figure is absent (no timed calls).
    let value: @Sendable (ReportFigures) -> String?

    static let all: [MetricColumn] = [
        count("requests", "requests", \.requests),
        count("refused", "refused", \.refused),
        count("errors", "errors", \.errors),
        count("input_tokens", "input", \.inputTokens),
        count("cached_input_tokens", "cached in", \.cachedInputTokens),
        count("cache_write_tokens", "cache write", \.cacheWriteTokens),
        count("output_tokens", "output", \.outputTokens),
        count("reasoning_tokens", "reasoning", \.reasoningTokens),
        MetricColumn(name: "cost_usd", heading: "cost", kind: .dollars) { $0.cost.formatted(decimals: 6) },
        MetricColumn(name: "cost_picodollars", heading: nil, kind: .exactInteger) { String($0.cost.picodollars) },
        MetricColumn(name: "latency_mean_ms", heading: "mean ms", kind: .milliseconds) {
            $0.latencyMeanMicros.map(Decimal3.milliseconds)
        },
        MetricColumn(name: "latency_p95_ms", heading: "p95 ms", kind: .milliseconds) {
            $0.latencyP95Micros.map(Decimal3.milliseconds)
        },
    ]

    private static func count(_ name: String, _ heading: String, _ path: KeyPath<ReportFigures, Int> & Sendable) -> MetricColumn {
        MetricColumn(name: name, heading: heading, kind: .count) { String($0[keyPath: path]) }
    }
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

/// Unix microseconds as ISO 8601 UTC, exact: `2025-01-01T00:00:00Z`, with `.ffffff` only when needed.
enum Timestamp {
    static func iso8601(micros: Int64) -> String {
        let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let fraction = micros - seconds * 1_000_000
        let day = Day(unixSeconds: seconds)
        let ofDay = seconds - day.unixSeconds
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        var text = "\(day)T\(pad(ofDay / 3_600, 2)):\(pad(ofDay / 60 % 60, 2)):\(pad(ofDay % 60, 2))"
        if fraction != 0 { text += "." + pad(fraction, 6) }
        return text + "Z"
    }
}
