import Foundation
import Ledger

/// A Markdown table of the report: the chosen figures, pipes escaped in labels, figures
/// right-aligned, and a bold TOTAL row; then the summary as Markdown tables.
enum MarkdownRendering {
    static func render(_ report: Report, query: ReportQuery, columns: ReportColumns) -> String {
        let metrics = columns.metrics
        let labels = query.groupBy.isEmpty ? [""] : query.groupBy.map(\.rawValue)
        let context = MetricColumn.Context(totalCost: report.totals.cost)
        var output = "Usage " + Timestamp.span(query)
        if !query.groupBy.isEmpty { output += ", by " + query.groupBy.map(\.rawValue).joined(separator: ", ") }
        output += "\n\n"
        output += row(labels + metrics.map { $0.heading ?? $0.name })
        output += row(labels.map { _ in "---" } + metrics.map { _ in "---:" })
        if !query.groupBy.isEmpty {
            for line in report.rows {
                output += row(line.values + metrics.map { TableRendering.cell($0, line.figures, context.folding(line)) })
            }
        }
        let totals = ["TOTAL"] + Array(repeating: "", count: labels.count - 1)
            + metrics.map { TableRendering.cell($0, report.totals, context) }
        output += row(totals.map { $0.isEmpty ? "" : "**\($0)**" })
        return output
    }

    /// The summary: its facts as a two-column table, then days and budgets.
    static func summary(_ summary: ReportSummary) -> String {
        var output = "### Summary\n\n" + row(["", ""]) + row(["---", "---"])
        for (label, value) in SummaryText.facts(summary) { output += row([label, value]) }
        for section in SummaryText.sections(summary) {
            output += "\n#### \(section.title)\n\n" + row(section.header)
            output += row(section.header.enumerated().map { $0.offset < section.labelColumns ? "---" : "---:" })
            for line in section.rows { output += row(line) }
        }
        return output
    }

    private static func row(_ cells: [String]) -> String {
        "| " + cells.map(escaped).joined(separator: " | ") + " |\n"
    }

    /// Pipes would split a cell, line breaks end the table, and `<` start HTML a viewer may run:
    /// escape them (control characters as `TerminalText` writes them).
    private static func escaped(_ text: String) -> String {
        TerminalText.printable(text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "|", with: "\\|")
            .replacingOccurrences(of: "\r\n", with: " ").replacingOccurrences(of: "\n", with: " "))
            .replacingOccurrences(of: "<", with: "&lt;")
    }
}
