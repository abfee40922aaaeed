import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Ledger
import Metering
import Policy
import Testing
@testable import Reports

@Suite("html report")
struct HTMLRenderingTests {
    static let start = Day("2026-10-19")!.unixSeconds * 1_000_000

    /// The realistic month, the report by user and its summary, as `tokenctl report --format html` makes them.
    private func render(groupBy: [ReportDimension] = [.user], in dir: TemporaryDirectory)
        throws -> (html: String, report: Report, summary: ReportSummary) {
        let reader = try ledger(with: RealisticLedger.entries(start: Self.start), in: dir)
        defer { reader.close() }
        var query = ReportQuery(since: Self.start, until: Self.start + 30 * UnixTime.microsPerDay, groupBy: groupBy)
        query.timeZone = TimeZone(identifier: "Europe/Berlin")!
        let report = try reader.report(query)
        let plans = try loadTestPolicy(plans: """
            time_zone: Europe/Berlin
            defaults: { plan: staff }
            plans:
              staff: { budget: { daily_usd: "5", monthly_usd: "60" } }
            teams:
              research: { budget: { monthly_usd: "150" } }
            """).plans
        let summary = try ReportSummary.compute(reader: reader, query: query, plans: plans,
                                                now: Self.start + 40 * UnixTime.microsPerDay)
        // For screenshots: `REPORTS_FIXTURE_DIR=/tmp/x swift test --filter "html report"` keeps
        // the ledger (for `tokenctl report`) and the page.
        if let keep = ProcessInfo.processInfo.environment["REPORTS_FIXTURE_DIR"] {
            try FileManager.default.createDirectory(atPath: keep, withIntermediateDirectories: true)
            let target = (keep as NSString).appendingPathComponent("realistic.sqlite")
            try? FileManager.default.removeItem(atPath: target)
            try FileManager.default.copyItem(atPath: dir.ledgerPath, toPath: target)
        }
        return (ReportRenderer.render(report, query: query, format: .html, summary: summary), report, summary)
    }

    @Test("one well-formed page with no external references, scripts or network")
    func selfContained() throws {
        let dir = try TemporaryDirectory()
        let (html, _, _) = try render(in: dir)
        let parser = XMLParser(data: Data(html.utf8))
        let elements = ElementCounter()
        parser.delegate = elements
        #expect(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
        #expect(elements.counts["svg"] == 4)
        #expect(elements.counts["script"] == nil)
        #expect((elements.counts["rect"] ?? 0) > 100)
        for reference in ["http:", "https:", "src=", "href=", "url(", "@import", "<link", "<script", "<img", "//"] {
            #expect(!html.contains(reference), "\(reference)")
        }
        #expect(html.hasPrefix("<!DOCTYPE html>"))
    }

    @Test("its figures are the report's: table cells, chart titles and the summary")
    func numbersMatch() throws {
        let dir = try TemporaryDirectory()
        let (html, report, summary) = try render(in: dir)
        let context = MetricColumn.Context(totalCost: report.totals.cost)
        // The table: every row's cost and share, and the exact TOTAL.
        for row in report.rows {
            let cost = DisplayText.dollars(row.cost)
            let share = Ratio.percent(row.cost.picodollars, of: report.totals.cost.picodollars)! + "%"
            #expect(html.contains("<td>\(cost)</td><td>\(share)</td>"), "\(row.values)")
            let p95 = MetricColumn.named("latency_p95_ms")!.value(row.figures, context)!
            #expect(html.contains("<td>\(p95)</td>"))
        }
        #expect(html.contains("<td>\(DisplayText.dollars(report.totals.cost))</td><td>100.00%</td>"))
        // Charts: each day's total, each user's and each model's cost, each model's p50 and p95.
        for day in summary.days {
            #expect(html.contains("<title>\(day.day): \(DisplayText.dollars(day.cost)), \(day.activeUsers) active users</title>"))
        }
        for user in summary.users.prefix(SVGCharts.maxBars) {
            #expect(html.contains("<title>\(XML.escaped(user.user)): \(DisplayText.dollars(user.cost))</title>"))
        }
        for model in summary.models {
            #expect(html.contains("<title>\(model.values[0]): \(DisplayText.dollars(model.cost))</title>"))
            #expect(html.contains("<title>\(model.values[0]) p95: \(Decimal3.milliseconds(model.latencyP95Micros!)) ms</title>"))
            #expect(html.contains("<title>\(model.values[0]) p50: \(Decimal3.milliseconds(model.latencyP50Micros!)) ms</title>"))
        }
        // The stacked bands of a day add up to its total.
        let sums = summary.days.map { $0.userCosts.reduce(Int128(0)) { $0 + $1.cost.picodollars } }
        #expect(zip(sums, summary.days).allSatisfy { $0 <= $1.cost.picodollars })
        #expect(summary.users.reduce(Int128(0)) { $0 + $1.cost.picodollars } == report.totals.cost.picodollars)
        // The summary facts, and the budgets (the month's staff budget of $60 is the busiest).
        #expect(html.contains("<th>daily cost per active user</th><td>\(DisplayText.dollars(summary.meanDailyCostPerActiveUser!))"))
        #expect(html.contains("<th>total cost</th><td>\(DisplayText.dollars(report.totals.cost))</td>"))
        #expect(!summary.budgets.isEmpty)
        #expect(html.contains("Budget utilisation"))
        #expect(summary.totals.retries > 0 && summary.activeUsers == RealisticLedger.users.count)
    }

    @Test("labels are escaped everywhere")
    func escaping() throws {
        let dir = try TemporaryDirectory()
        let (html, _, _) = try render(in: dir)
        #expect(!html.contains("mallory <script>"))
        #expect(html.contains("mallory &lt;script&gt;"))
        #expect(html.contains("peggy &amp; co"))
        #expect(XML.escaped("a<b>&\"'\u{1}\n") == "a&lt;b&gt;&amp;&quot;&#39;\u{FFFD}\n")
    }

    @Test("without a summary: the table alone, still self-contained")
    func withoutSummary() throws {
        let query = ReportQuery(since: day0, until: day0 + 86_400_000_000, groupBy: [.team])
        let html = ReportRenderer.render(Report(query: query, rows: [], totals: ReportFigures()), query: query, format: .html)
        let parser = XMLParser(data: Data(html.utf8))
        #expect(parser.parse())
        #expect(!html.contains("<svg"))
        #expect(html.contains("<tr class=\"total\"><td class=\"label\">TOTAL</td>"))
    }
}

final class ElementCounter: NSObject, XMLParserDelegate, @unchecked Sendable {
    var counts: [String: Int] = [:]
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        counts[name, default: 0] += 1
    }
}
