import Ledger

/// Output formats of `tokenctl report`.
public enum ReportFormat: String, Sendable, Hashable, CaseIterable {
    /// Aligned columns for a terminal, money as `$1,234.567890`, a totals line, then the summary.
    case table
    /// RFC 4180 CSV, header row of stable snake_case names, one line per group (no totals line,
    /// so that summing a column gives the total). With a summary: the summary's CSV instead.
    case csv
    /// One JSON object; see `JSONRendering` for the field names.
    case json
    /// A GitHub-flavoured Markdown table with a bold totals row, then the summary.
    case markdown
    /// One self-contained HTML page: summary, inline SVG charts, the table. No scripts, no
    /// external references.
    case html
}

/// Turns a `Report` into text. Money is rendered from exact integers: the only rounding is to the
/// micro-dollar in `cost_usd`/the table (`Money.Total.formatted`); `cost_picodollars` is exact.
public enum ReportRenderer {
    /// `query` is the query the report answers: its period heads the output and its `groupBy`
    /// names the dimension columns, in order. `columns` picks the figures of the table, markdown
    /// and html (default: `ReportColumns.table` for the table, all for the others; CSV and JSON
    /// carry all). With a `summary`, table, markdown and html print it after the rows, JSON adds
    /// a `"summary"` object, and CSV renders the summary alone (`SummaryCSV`), so that each CSV
    /// file stays one header and its records.
    public static func render(_ report: Report, query: ReportQuery, format: ReportFormat,
                              columns: ReportColumns? = nil, summary: ReportSummary? = nil) -> String {
        switch format {
        case .table:
            var text = TableRendering.render(report, query: query, columns: columns ?? .table)
            if let summary { text += "\n" + SummaryText.render(summary) }
            return text
        case .csv:
            return summary.map(SummaryCSV.render) ?? CSVRendering.render(report, query: query)
        case .json:
            return JSONRendering.render(report, query: query, summary: summary)
        case .markdown:
            var text = MarkdownRendering.render(report, query: query, columns: columns ?? .all)
            if let summary { text += "\n" + MarkdownRendering.summary(summary) }
            return text
        case .html:
            return HTMLRendering.render(report, query: query, columns: columns ?? .all, summary: summary)
        }
    }
}
