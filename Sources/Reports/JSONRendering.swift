import Metering
import Ledger

/// One JSON object, keys in a stable order:
///
/// ```
/// {"since":"2025-01-01T00:00:00Z","until":"2025-02-01T00:00:00Z","group_by":["user"],
///  "rows":[{"user":"alice","requests":3,…}],"totals":{"requests":3,…}}
/// ```
///
/// - `since`/`until`: the half-open period, ISO 8601 UTC (fraction of a second only when non-zero).
/// - `group_by`: dimension names (`user`, `team`, `model`, `day`); each row has those keys first,
///   as strings (`"(none)"` for a missing user/team/model, `YYYY-MM-DD` for a day).
/// - Figures, in rows and in `totals`: `requests`, `refused`, `errors`, `input_tokens`,
///   `cached_input_tokens`, `cache_write_tokens`, `output_tokens`, `reasoning_tokens` (integers);
///   `cost_usd` (decimal string, 6 decimals, rounded half away from zero) and `cost_picodollars`
///   (exact integer string: strings, because a JSON number may be read as a double);
///   `latency_mean_ms`, `latency_p95_ms` (numbers with 3 decimals, or null when nothing was timed).
enum JSONRendering {
    static func render(_ report: Report, query: ReportQuery) -> String {
        var output = "{\"since\":" + string(Timestamp.iso8601(micros: query.since))
        output += ",\"until\":" + string(Timestamp.iso8601(micros: query.until))
        output += ",\"group_by\":[" + query.groupBy.map { string($0.rawValue) }.joined(separator: ",") + "]"
        output += ",\"rows\":[" + report.rows.map { row in
            let labels = zip(query.groupBy, row.values).map { string($0.rawValue) + ":" + string($1) }
            return "{" + (labels + figures(row.figures)).joined(separator: ",") + "}"
        }.joined(separator: ",") + "]"
        output += ",\"totals\":{" + figures(report.totals).joined(separator: ",") + "}}\n"
        return output
    }

    private static func figures(_ f: ReportFigures) -> [String] {
        MetricColumn.all.map { column in
            let value = column.value(f)
            let json: String
            switch column.kind {
            case .count, .milliseconds: json = value ?? "null"
            case .dollars, .exactInteger: json = value.map(string) ?? "null"
            }
            return string(column.name) + ":" + json
        }
    }

    /// A JSON string literal (RFC 8259 escaping).
    static func string(_ text: String) -> String { JSONString.literal(text) }
}
