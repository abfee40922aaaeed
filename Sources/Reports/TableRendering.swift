import Ledger
import Metering

/// Aligned plain-text columns for a terminal: dimension labels left-aligned, figures right-aligned,
/// counts with thousands separators, money as `$1,234.567890`, then a rule and a `TOTAL` line.
enum TableRendering {
    static func render(_ report: Report, query: ReportQuery, columns: ReportColumns) -> String {
        let metrics = columns.metrics
        // With no grouping the single row would repeat the totals; show the totals line alone.
        let labelHeadings = query.groupBy.isEmpty ? [""] : query.groupBy.map(\.rawValue)
        let headings = labelHeadings + metrics.map { $0.heading ?? $0.name }
        let context = MetricColumn.Context(totalCost: report.totals.cost)

        var lines: [[String]] = []
        if !query.groupBy.isEmpty {
            for row in report.rows {
                lines.append(row.values + metrics.map { cell($0, row.figures, context.folding(row)) })
            }
        }
        let totals = ["TOTAL"] + Array(repeating: "", count: labelHeadings.count - 1)
            + metrics.map { cell($0, report.totals, context) }

        let layout = TextColumns(fitting: [headings] + lines + [totals], labelColumns: labelHeadings.count)
        var output = "Usage " + Timestamp.span(query)
        if !query.groupBy.isEmpty { output += ", by " + query.groupBy.map(\.rawValue).joined(separator: ", ") }
        output += "\n\n" + layout.line(headings) + "\n" + layout.rule + "\n"
        if !query.groupBy.isEmpty {
            if lines.isEmpty { output += "(no calls)\n" }
            for line in lines { output += layout.line(line) + "\n" }
            output += layout.rule + "\n"
        }
        output += layout.line(totals) + "\n"
        return output
    }

    /// A figure as the table shows it: counts grouped by thousands, dollars as `$1,234.567890`,
    /// shares as `12.34%`, `-` when absent.
    static func cell(_ column: MetricColumn, _ figures: ReportFigures, _ context: MetricColumn.Context) -> String {
        guard let value = column.value(figures, context) else { return "-" }
        switch column.kind {
        case .count: return DisplayText.grouped(value)
        case .dollars: return DisplayText.dollars(value)
        case .percent: return value + "%"
        case .exactInteger, .milliseconds: return value
        }
    }
}

extension MetricColumn.Context {
    /// The context of one row: `Report.top`'s `(others)` row has no active days.
    func folding(_ row: ReportRow) -> Self {
        var context = self
        context.folded = !row.values.isEmpty && row.values.allSatisfy { $0 == Report.othersLabel }
        return context
    }
}

/// Numbers as people read them in the table, markdown, html and the summary.
enum DisplayText {
    /// "1234567" → "1,234,567" (any leading sign kept).
    static func grouped(_ digits: String) -> String {
        let negative = digits.hasPrefix("-")
        let body = Array(negative ? digits.dropFirst() : Substring(digits))
        var text = ""
        for (index, character) in body.enumerated() {
            if index > 0 && (body.count - index) % 3 == 0 { text.append(",") }
            text.append(character)
        }
        return (negative ? "-" : "") + text
    }

    static func grouped(_ number: Int) -> String { grouped(String(number)) }

    /// "1234.567890" → "$1,234.567890".
    static func dollars(_ decimal: String) -> String {
        let negative = decimal.hasPrefix("-")
        let body = negative ? String(decimal.dropFirst()) : decimal
        let parts = body.split(separator: ".", maxSplits: 1)
        let whole = grouped(String(parts[0]))
        return (negative ? "-$" : "$") + whole + (parts.count == 2 ? "." + parts[1] : "")
    }

    /// Money to the micro-dollar: "$1,234.567890".
    static func dollars(_ total: Money.Total) -> String { dollars(total.formatted(decimals: 6)) }
}
