import Ledger

/// Aligned plain-text columns for a terminal: dimension labels left-aligned, figures right-aligned,
/// counts with thousands separators, money as `$12.345678`, then a rule and a `TOTAL` line.
enum TableRendering {
    static func render(_ report: Report, query: ReportQuery) -> String {
        let metrics = MetricColumn.all.filter { $0.heading != nil }
        // With no grouping the single row would repeat the totals; show the totals line alone.
        let labelHeadings = query.groupBy.isEmpty ? [""] : query.groupBy.map(\.rawValue)
        let headings = labelHeadings + metrics.map { $0.heading! }

        var lines: [[String]] = []
        if !query.groupBy.isEmpty {
            for row in report.rows {
                lines.append(row.values + metrics.map { cell($0, row.figures) })
            }
        }
        let totals = ["TOTAL"] + Array(repeating: "", count: labelHeadings.count - 1)
            + metrics.map { cell($0, report.totals) }

        let columns = TextColumns(fitting: [headings] + lines + [totals], labelColumns: labelHeadings.count)
        let format = columns.line
        let rule = columns.rule

        var output = "Usage from \(Timestamp.iso8601(micros: query.since)) to \(Timestamp.iso8601(micros: query.until))"
        if !query.groupBy.isEmpty { output += ", by " + query.groupBy.map(\.rawValue).joined(separator: ", ") }
        output += "\n\n" + format(headings) + "\n" + rule + "\n"
        if !query.groupBy.isEmpty {
            if lines.isEmpty { output += "(no calls)\n" }
            for line in lines { output += format(line) + "\n" }
            output += rule + "\n"
        }
        output += format(totals) + "\n"
        return output
    }

    /// A figure as the table shows it: counts grouped by thousands, dollars with `$`, `-` when absent.
    static func cell(_ column: MetricColumn, _ figures: ReportFigures) -> String {
        guard let value = column.value(figures) else { return "-" }
        switch column.kind {
        case .count: return grouped(value)
        case .dollars: return "$" + value
        case .exactInteger, .milliseconds: return value
        }
    }

    /// "1234567" → "1,234,567".
    private static func grouped(_ digits: String) -> String {
        let negative = digits.hasPrefix("-")
        let body = Array(negative ? digits.dropFirst() : Substring(digits))
        var text = ""
        for (index, character) in body.enumerated() {
            if index > 0 && (body.count - index) % 3 == 0 { text.append(",") }
            text.append(character)
        }
        return (negative ? "-" : "") + text
    }
}
