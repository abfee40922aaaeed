import Ledger
import Reports
import Testing

@Suite("markdown")
struct MarkdownRenderingTests {
    @Test("one table row per group plus a bold total; pipes and line breaks in names cannot break it")
    func markdownTable() throws {
        let dir = try TemporaryDirectory()
        let reader = try populatedLedger(in: dir)
        defer { reader.close() }
        let query = ReportQuery(since: 0, until: .max, groupBy: [.user])
        let report = try reader.report(query)
        let text = ReportRenderer.render(report, query: query, format: .markdown)
        let tableLines = text.split(separator: "\n").filter { $0.hasPrefix("|") }
        #expect(tableLines.count == report.rows.count + 3)  // header, alignment, rows, total
        let columns = tableLines[0].split(separator: "|", omittingEmptySubsequences: false).count
        for line in tableLines {
            // An escaped pipe is not a column separator.
            let cells = line.replacingOccurrences(of: "\\|", with: "").split(separator: "|", omittingEmptySubsequences: false)
            #expect(cells.count == columns, "\(line)")
        }
        #expect(tableLines.last?.hasPrefix("| **TOTAL** |") == true)
        #expect(text.contains("$" + report.totals.cost.formatted(decimals: 6)))
    }
}
