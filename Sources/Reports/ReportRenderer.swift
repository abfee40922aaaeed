import Ledger

/// Output formats of `tokenctl report`.
public enum ReportFormat: String, Sendable, Hashable, CaseIterable {
    /// Aligned columns for a terminal, money as `$12.345678`, with a totals line.
    case table
    /// RFC 4180 CSV, header row of stable snake_case names, one line per group (no totals line,
    /// so that summing a column gives the total).
    case csv
    /// One JSON object; see `JSONRendering` for the field names.
    case json
    /// A GitHub-flavoured Markdown table with a bold totals row, for issues, wikis and e-mail.
    case markdown
}

/// Turns a `Report` into text. Money is rendered from exact integers: the only rounding is to the
/// micro-dollar in `cost_usd`/the table (`Money.Total.formatted`); `cost_picodollars` is exact.
public enum ReportRenderer {
    /// `query` is the query the report answers: its period heads the output and its `groupBy`
    /// names the dimension columns, in order.
    public static func render(_ report: Report, query: ReportQuery, format: ReportFormat) -> String {
        switch format {
        case .table: return TableRendering.render(report, query: query)
        case .csv: return CSVRendering.render(report, query: query)
        case .json: return JSONRendering.render(report, query: query)
        case .markdown: return MarkdownRendering.render(report, query: query)
        }
    }
}
