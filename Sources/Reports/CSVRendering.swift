import Ledger

/// RFC 4180 CSV: a header of stable snake_case names (the grouped dimensions in query order, then
/// every `MetricColumn` name: `requests,refused,errors,input_tokens,cached_input_tokens,
/// cache_write_tokens,output_tokens,reasoning_tokens,cost_usd,cost_picodollars,latency_mean_ms,
/// latency_p95_ms,latency_p50_ms,ttft_p50_ms,cost_share_pct,cost_per_request_usd,active_days,
/// retries,retry_cost_usd,retry_cost_picodollars,web_searches,file_searches`), one record per
/// group, CRLF line ends. Absent figures are empty fields. No totals record: summing a column
/// gives the total (exactly, for `cost_picodollars`).
enum CSVRendering {
    static func render(_ report: Report, query: ReportQuery) -> String {
        let header = query.groupBy.map(\.rawValue) + MetricColumn.all.map(\.name)
        let context = MetricColumn.Context(totalCost: report.totals.cost)
        var output = record(header)
        for row in report.rows {
            let rowContext = context.folding(row)
            output += record(row.values + MetricColumn.all.map { $0.value(row.figures, rowContext) ?? "" })
        }
        return output
    }

    static func record(_ fields: [String]) -> String {
        fields.map(quoted).joined(separator: ",") + "\r\n"
    }

    /// Quotes a field that holds a comma, quote, CR or LF, doubling its quotes. A name that a
    /// spreadsheet would run as a formula (`=`, `+`, `@`, a tab or CR first, or `-` before
    /// something not a number: OWASP's list) gets a leading `'`, which spreadsheets show as text.
    static func quoted(_ field: String) -> String {
        var field = field
        if let first = field.unicodeScalars.first, "=+@\t\r".unicodeScalars.contains(first)
            || (first == "-" && field.count > 1 && Double(field) == nil) {
            field = "'" + field
        }
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) else {
            return field
        }
        return "\"" + field.replacing("\"", with: "\"\"") + "\""
    }
}
