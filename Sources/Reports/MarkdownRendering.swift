import Foundation
import Ledger

/// A Markdown table of the report: the table format's figures, pipes escaped in labels, figures
/// right-aligned, and a bold TOTAL row.
enum MarkdownRendering {
    static func render(_ report: Report, query: ReportQuery) -> String {
        let metrics = MetricColumn.all.filter { $0.heading != nil }
        let labels = query.groupBy.isEmpty ? [""] : query.groupBy.map(\.rawValue)
        var output = "Usage from \(Timestamp.iso8601(micros: query.since)) to \(Timestamp.iso8601(micros: query.until))"
        if !query.groupBy.isEmpty { output += ", by " + query.groupBy.map(\.rawValue).joined(separator: ", ") }
        output += "\n\n"
        output += row(labels + metrics.map { $0.heading! })
        output += row(labels.map { _ in "---" } + metrics.map { _ in "---:" })
        if !query.groupBy.isEmpty {
            for line in report.rows {
                output += row(line.values + metrics.map { TableRendering.cell($0, line.figures) })
            }
        }
        let totals = ["TOTAL"] + Array(repeating: "", count: labels.count - 1)
            + metrics.map { TableRendering.cell($0, report.totals) }
        output += row(totals.map { $0.isEmpty ? "" : "**\($0)**" })
        return output
    }

    private static func row(_ cells: [String]) -> String {
        "| " + cells.map(escaped).joined(separator: " | ") + " |\n"
    }

    /// Pipes would split a cell and line breaks end the table: escape and flatten them.
    private static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "|", with: "\\|")
            .replacingOccurrences(of: "\r\n", with: " ").replacingOccurrences(of: "\n", with: " ")
    }
}

