import Foundation
import Ledger
import Metering

/// `--format html`: one self-contained page (inline CSS and SVG; no scripts, fonts, images or
/// links), well-formed as XML so that any XML parser reads it. Holds the summary, four charts
/// (cost per day stacked by top users, top users, cost by model, p50/p95 latency by model), the
/// report table, and the summary's day and budget tables. Every label is escaped.
enum HTMLRendering {
    static func render(_ report: Report, query: ReportQuery, columns: ReportColumns, summary: ReportSummary?) -> String {
        var grouping = ""
        if !query.groupBy.isEmpty { grouping = ", by " + query.groupBy.map(\.rawValue).joined(separator: ", ") }
        var body = "<h1>tokenctl usage report</h1>\n"
        body += "<p class=\"period\">\(XML.escaped(Timestamp.span(query) + grouping))</p>\n"
        if let summary {
            body += "<section class=\"summary\">\n<h2>Summary</h2>\n<table class=\"facts\">\n"
            for (label, value) in SummaryText.facts(summary) {
                body += "<tr><th>\(XML.escaped(label))</th><td>\(XML.escaped(value))</td></tr>\n"
            }
            body += "</table>\n</section>\n<section class=\"charts\">\n"
            body += figure("Cost per day, by top users", SVGCharts.costPerDay(summary))
            body += figure("Top users by cost", SVGCharts.bars(summary.users.prefix(SVGCharts.maxBars).map { ($0.user, $0.cost) }))
            body += figure("Cost by model", SVGCharts.bars(summary.models.prefix(SVGCharts.maxBars).map { ($0.values[0], $0.cost) }))
            body += figure("Latency by model (p50 and p95)", SVGCharts.latency(summary.models))
            body += "</section>\n"
        }
        // A wide table scrolls inside its box rather than widening the page.
        body += "<h2>Report</h2>\n<div class=\"wide\">\n" + table(report, query: query, columns: columns) + "</div>\n"
        if let summary {
            for section in SummaryText.sections(summary) {
                body += "<h2>\(XML.escaped(section.title))</h2>\n<table>\n<tr>" + section.header.enumerated().map {
                    "<th\($0.offset < section.labelColumns ? " class=\"label\"" : "")>\(XML.escaped($0.element))</th>"
                }.joined() + "</tr>\n"
                for row in section.rows {
                    body += "<tr>" + row.enumerated().map { index, cell in
                        "<td\(index < section.labelColumns ? " class=\"label\"" : "")>\(XML.escaped(cell))</td>"
                    }.joined() + "</tr>\n"
                }
                body += "</table>\n"
            }
        }
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8"/>
            <title>tokenctl report \(XML.escaped(Timestamp.span(query)))</title>
            <style>
            \(style)
            </style>
            </head>
            <body>
            \(body)</body>
            </html>

            """
    }

    private static func figure(_ caption: String, _ svg: String) -> String {
        "<figure>\n<figcaption>\(XML.escaped(caption))</figcaption>\n\(svg)</figure>\n"
    }

    private static func table(_ report: Report, query: ReportQuery, columns: ReportColumns) -> String {
        let metrics = columns.metrics
        let labels = query.groupBy.isEmpty ? [""] : query.groupBy.map(\.rawValue)
        let context = MetricColumn.Context(totalCost: report.totals.cost)
        var html = "<table class=\"report\">\n<tr>" + labels.map { "<th class=\"label\">\(XML.escaped($0))</th>" }.joined()
            + metrics.map { "<th>\(XML.escaped($0.heading ?? $0.name))</th>" }.joined() + "</tr>\n"
        func row(_ cells: [String], figures: [String], total: Bool = false) -> String {
            "<tr\(total ? " class=\"total\"" : "")>" + cells.map { "<td class=\"label\">\(XML.escaped($0))</td>" }.joined()
                + figures.map { "<td>\(XML.escaped($0))</td>" }.joined() + "</tr>\n"
        }
        if !query.groupBy.isEmpty {
            for line in report.rows {
                html += row(line.values, figures: metrics.map { TableRendering.cell($0, line.figures, context.folding(line)) })
            }
        }
        html += row(["TOTAL"] + Array(repeating: "", count: labels.count - 1),
                    figures: metrics.map { TableRendering.cell($0, report.totals, context) }, total: true)
        return html + "</table>\n"
    }

    private static let style = """
        body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2433; margin: 20px 20px; background: #fff; }
        h1 { font-size: 22px; margin: 0 0 4px; }
        h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d8dde6; padding-bottom: 4px; }
        .period { color: #5a6473; margin: 0 0 8px; }
        table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
        th, td { padding: 3px 10px; border-bottom: 1px solid #eceff4; text-align: right; white-space: nowrap; }
        th { background: #f4f6f9; font-weight: 600; }
        td.label, th.label, table.facts th { text-align: left; }
        .wide { overflow-x: auto; }
        table.report { font-size: 11px; }
        table.report th, table.report td { padding: 3px 4px; }
        table.report th { white-space: normal; vertical-align: bottom; max-width: 64px; }
        table.report th.label { max-width: none; }
        table.facts th { background: none; font-weight: 500; color: #5a6473; }
        table.facts td { text-align: left; }
        tr.total td { font-weight: 700; border-top: 2px solid #1d2433; }
        .charts { display: flex; flex-wrap: wrap; gap: 16px 32px; }
        figure { margin: 16px 0 0; }
        figcaption { font-weight: 600; margin-bottom: 4px; }
        svg text { font: 11px system-ui, sans-serif; fill: #3b4453; }
        svg .axis { stroke: #b9c0cc; stroke-width: 1; }
        svg .grid { stroke: #eceff4; stroke-width: 1; }
        """
}

/// Escaping for XML (and so for HTML): markup characters become entities, and characters XML
/// 1.0 forbids (C0 controls other than tab and line ends) become U+FFFD.
enum XML {
    static func escaped(_ text: String) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "\"": output += "&quot;"
            case "'": output += "&#39;"
            case "\t", "\n", "\r": output.unicodeScalars.append(scalar)
            default:
                output.unicodeScalars.append(scalar.value < 0x20 || scalar.value == 0x7F || (0xFFFE...0xFFFF).contains(scalar.value)
                                             ? "\u{FFFD}" : scalar)
            }
        }
        return output
    }
}
