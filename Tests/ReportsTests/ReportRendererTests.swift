import Foundation
import Ledger
import Metering
import Testing
@testable import Reports

@Suite struct ReportRendererTests {
    static let figureColumns = ["requests", "refused", "errors", "input_tokens", "cached_input_tokens",
                                "cache_write_tokens", "output_tokens", "reasoning_tokens", "cost_usd",
                                "cost_picodollars", "latency_mean_ms", "latency_p95_ms", "latency_p50_ms", "ttft_p50_ms",
                                "cost_share_pct", "cost_per_request_usd", "active_days", "retries", "retry_cost_usd",
                                "retry_cost_picodollars", "web_searches", "file_searches"]

    @Test(arguments: [[ReportDimension.user], [.user, .model], [.day, .team], []])
    func csvParsesBackAndSumsToTotals(groupBy: [ReportDimension]) throws {
        let dir = try TemporaryDirectory()
        let reader = try populatedLedger(in: dir)
        let query = ReportQuery(since: day0, until: day0 + 3 * 86_400_000_000, groupBy: groupBy)
        let report = try reader.report(query)
        let csv = ReportRenderer.render(report, query: query, format: .csv)
        let records = try parseCSV(csv)
        #expect(records.first == groupBy.map(\.rawValue) + Self.figureColumns)
        let body = Array(records.dropFirst())
        #expect(body.count == report.rows.count)
        let header = records[0]
        func column(_ name: String) -> [String] { body.map { $0[header.firstIndex(of: name)!] } }

        // Labels round-trip through quoting.
        for (record, row) in zip(body, report.rows) {
            #expect(Array(record.prefix(groupBy.count)) == row.values)
        }
        // Totals are the exact sums of the rows.
        let picos = column("cost_picodollars").map { Int128($0)! }.reduce(0, +)
        #expect(picos == report.totals.cost.picodollars)
        for (name, total) in [("requests", report.totals.requests), ("refused", report.totals.refused),
                              ("errors", report.totals.errors), ("input_tokens", report.totals.inputTokens),
                              ("output_tokens", report.totals.outputTokens),
                              ("reasoning_tokens", report.totals.reasoningTokens)] {
            #expect(column(name).map { Int($0)! }.reduce(0, +) == total, "\(name)")
        }
        #expect(report.totals.requests == 300)
        for usd in column("cost_usd") { #expect(usd.wholeMatch(of: /[0-9]+\.[0-9]{6}/) != nil) }
    }

    @Test func jsonParsesWithJSONSerialization() throws {
        let dir = try TemporaryDirectory()
        let reader = try populatedLedger(in: dir)
        let query = ReportQuery(since: day0, until: day0 + 31 * 86_400_000_000, groupBy: [.user, .day])
        let report = try reader.report(query)
        let json = ReportRenderer.render(report, query: query, format: .json)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["since"] as? String == "2025-01-01T00:00:00Z")
        #expect(object["until"] as? String == "2025-02-01T00:00:00Z")
        #expect(object["group_by"] as? [String] == ["user", "day"])
        let rows = try #require(object["rows"] as? [[String: Any]])
        let totals = try #require(object["totals"] as? [String: Any])
        #expect(rows.count == report.rows.count)
        #expect(Set(totals.keys) == Set(Self.figureColumns))
        for (row, expected) in zip(rows, report.rows) {
            #expect(Set(row.keys) == Set(["user", "day"] + Self.figureColumns))
            #expect(row["user"] as? String == expected.values[0])
            #expect(row["day"] as? String == expected.values[1])
            #expect(row["requests"] as? Int == expected.requests)
        }
        let rowPicos = rows.map { Int128($0["cost_picodollars"] as! String)! }.reduce(0, +)
        #expect(String(rowPicos) == totals["cost_picodollars"] as? String)
        #expect(totals["cost_usd"] as? String == report.totals.cost.formatted(decimals: 6))
        #expect(rows.map { $0["requests"] as! Int }.reduce(0, +) == totals["requests"] as? Int)
        // The refused-only group has no latency: null, not 0.
        let none = try #require(rows.first { $0["user"] as? String == "(none)" })
        #expect(none["latency_mean_ms"] is NSNull)
        #expect(none["refused"] as? Int == none["requests"] as? Int)
    }

    @Test func tableIsAlignedWithTotals() throws {
        let dir = try TemporaryDirectory()
        let reader = try populatedLedger(in: dir)
        let query = ReportQuery(since: day0, until: day0 + 3 * 86_400_000_000, groupBy: [.model])
        let report = try reader.report(query)
        let table = ReportRenderer.render(report, query: query, format: .table)
        let lines = table.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "Usage from 2025-01-01T00:00:00Z to 2025-01-04T00:00:00Z, by model")
        let rule = lines[3]
        #expect(rule.allSatisfy { $0 == "-" || $0 == " " })
        // Every data line ends where the rule ends: figures are right-aligned.
        for line in lines[4...] where !line.isEmpty && !line.hasPrefix("-") {
            #expect(line.count == rule.count, "\(line)")
        }
        let totalLine = try #require(lines.last { $0.hasPrefix("TOTAL") })
        #expect(totalLine.contains("$" + report.totals.cost.formatted(decimals: 6)))
        #expect(totalLine.contains("300"))
        for row in report.rows { #expect(table.contains("$" + row.cost.formatted(decimals: 6))) }
    }

    /// A hand-built report pins the exact output of each format.
    @Test func exactOutput() throws {
        var f = ReportFigures()
        f.requests = 1234
        f.refused = 1
        f.errors = 2
        f.inputTokens = 1_000_000
        f.outputTokens = 5
        f.cost = Money.Total(picodollars: 12_345_678_500_000)  // $12.3456785 → rounds to $12.345679
        f.timedRequests = 2
        f.latencySumMicros = 3_001
        f.latencyP95Micros = 2_000
        f.latencyP50Micros = 1_000
        f.ttftP50Micros = 250
        f.activeDays = 1
        f.retries = 3
        f.retryCost = Money.Total(picodollars: 1_000_000_000_000)
        f.webSearches = 7
        f.fileSearches = 2
        var refusedOnly = ReportFigures()
        refusedOnly.requests = 1
        refusedOnly.refused = 1
        var totals = f
        totals.absorb(refusedOnly)
        let query = ReportQuery(since: day0, until: day0 + 1_500_000, groupBy: [.user])
        let report = Report(query: query, rows: [ReportRow(values: ["a,b"], figures: f),
                                                 ReportRow(values: ["(none)"], figures: refusedOnly)], totals: totals)

        // Cost per request: $12.3456785 / 1234 = $0.0100046… and / 1235 = $0.0099965… .
        #expect(ReportRenderer.render(report, query: query, format: .csv) == """
            user,requests,refused,errors,input_tokens,cached_input_tokens,cache_write_tokens,output_tokens,\
            reasoning_tokens,cost_usd,cost_picodollars,latency_mean_ms,latency_p95_ms,latency_p50_ms,ttft_p50_ms,\
            cost_share_pct,cost_per_request_usd,active_days,retries,retry_cost_usd,retry_cost_picodollars,web_searches,\
            file_searches\r
            "a,b",1234,1,2,1000000,0,0,5,0,12.345679,12345678500000,1.501,2.000,1.000,0.250,100.00,0.010005,1,3,\
            1.000000,1000000000000,7,2\r
            (none),1,1,0,0,0,0,0,0,0.000000,0,,,,,0.00,0.000000,0,0,0.000000,0,0,0\r

            """)
        #expect(ReportRenderer.render(report, query: query, format: .json) == """
            {"since":"2025-01-01T00:00:00Z","until":"2025-01-01T00:00:01.500000Z","time_zone":"UTC","group_by":["user"],\
            "rows":[{"user":"a,b","requests":1234,"refused":1,"errors":2,"input_tokens":1000000,\
            "cached_input_tokens":0,"cache_write_tokens":0,"output_tokens":5,"reasoning_tokens":0,\
            "cost_usd":"12.345679","cost_picodollars":"12345678500000","latency_mean_ms":1.501,"latency_p95_ms":2.000,\
            "latency_p50_ms":1.000,"ttft_p50_ms":0.250,"cost_share_pct":100.00,"cost_per_request_usd":"0.010005",\
            "active_days":1,"retries":3,"retry_cost_usd":"1.000000","retry_cost_picodollars":"1000000000000",\
            "web_searches":7,"file_searches":2},\
            {"user":"(none)","requests":1,"refused":1,"errors":0,"input_tokens":0,"cached_input_tokens":0,\
            "cache_write_tokens":0,"output_tokens":0,"reasoning_tokens":0,"cost_usd":"0.000000","cost_picodollars":"0",\
            "latency_mean_ms":null,"latency_p95_ms":null,"latency_p50_ms":null,"ttft_p50_ms":null,"cost_share_pct":0.00,\
            "cost_per_request_usd":"0.000000","active_days":0,"retries":0,"retry_cost_usd":"0.000000",\
            "retry_cost_picodollars":"0","web_searches":0,\
            "file_searches":0}],"totals":{"requests":1235,"refused":2,"errors":2,\
            "input_tokens":1000000,"cached_input_tokens":0,"cache_write_tokens":0,"output_tokens":5,"reasoning_tokens":0,\
            "cost_usd":"12.345679","cost_picodollars":"12345678500000","latency_mean_ms":1.501,"latency_p95_ms":2.000,\
            "latency_p50_ms":1.000,"ttft_p50_ms":0.250,"cost_share_pct":100.00,"cost_per_request_usd":"0.009997",\
            "active_days":1,"retries":3,"retry_cost_usd":"1.000000","retry_cost_picodollars":"1000000000000",\
            "web_searches":7,"file_searches":2}}

            """)
        #expect(ReportRenderer.render(report, query: query, format: .table) == """
            Usage from 2025-01-01T00:00:00Z to 2025-01-01T00:00:01.500000Z, by user

            user    requests  refused  errors      input  output        cost    share      $/req  p50 ms  p95 ms  ttft p50  days
            ------  --------  -------  ------  ---------  ------  ----------  -------  ---------  ------  ------  --------  ----
            a,b        1,234        1       2  1,000,000       5  $12.345679  100.00%  $0.010005   1.000   2.000     0.250     1
            (none)         1        1       0          0       0   $0.000000    0.00%  $0.000000       -       -         -     0
            ------  --------  -------  ------  ---------  ------  ----------  -------  ---------  ------  ------  --------  ----
            TOTAL      1,235        2       2  1,000,000       5  $12.345679  100.00%  $0.009997   1.000   2.000     0.250     1

            """)
        // --columns picks and orders the figures; money over $1,000 is grouped.
        var big = report
        big.rows[0].figures.cost = Money.Total(picodollars: 1_234_567_890_000_000_000)
        big.totals.cost = big.rows[0].figures.cost
        let picked = try ReportColumns(parsing: "cost_usd,requests,retry_cost_usd")
        #expect(ReportRenderer.render(big, query: query, format: .table, columns: picked) == """
            Usage from 2025-01-01T00:00:00Z to 2025-01-01T00:00:01.500000Z, by user

            user                 cost  requests  retry cost
            ------  -----------------  --------  ----------
            a,b     $1,234,567.890000     1,234   $1.000000
            (none)          $0.000000         1   $0.000000
            ------  -----------------  --------  ----------
            TOTAL   $1,234,567.890000     1,235   $1.000000

            """)
        #expect(throws: ReportColumns.Unknown.self) { try ReportColumns(parsing: "cost_usd,bogus") }
        #expect(throws: ReportColumns.Unknown.self) { try ReportColumns(parsing: "cost_picodollars") }
        #expect(try ReportColumns(parsing: "all") == .all)
    }

    /// Report.top's (others) row has no active days or percentiles: absent, never 0.
    @Test func foldedRowHasNoActiveDays() throws {
        let dir = try TemporaryDirectory()
        let reader = try populatedLedger(in: dir)
        let query = ReportQuery(since: day0, until: day0 + 3 * 86_400_000_000, groupBy: [.user])
        let report = try reader.report(query).top(2)
        let records = try parseCSV(ReportRenderer.render(report, query: query, format: .csv))
        let header = records[0]
        let others = try #require(records.first { $0[0] == Report.othersLabel })
        for name in ["active_days", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms"] {
            #expect(others[header.firstIndex(of: name)!] == "", "\(name)")
        }
        #expect(Int(records[1][header.firstIndex(of: "active_days")!])! > 0)
        let shares = records.dropFirst().map { Double($0[header.firstIndex(of: "cost_share_pct")!])! }
        #expect(abs(shares.reduce(0, +) - 100) < 0.02)
    }

    @Test func emptyReport() throws {
        let query = ReportQuery(since: day0, until: day0 + 86_400_000_000, groupBy: [.team])
        let report = Report(query: query, rows: [], totals: ReportFigures())
        #expect(try parseCSV(ReportRenderer.render(report, query: query, format: .csv)).count == 1)
        let json = ReportRenderer.render(report, query: query, format: .json)
        #expect(try JSONSerialization.jsonObject(with: Data(json.utf8)) is [String: Any])
        #expect(ReportRenderer.render(report, query: query, format: .table).contains("(no calls)"))
    }

    @Test("a report from the ledger's beginning says so, not 1970")
    func spanFromTheBeginning() {
        let whole = ReportQuery(since: 0, until: day0, groupBy: [.user])
        #expect(Timestamp.span(whole) == "from the first call to 2025-01-01T00:00:00Z")
        #expect(ReportRenderer.render(Report(query: whole, rows: [], totals: ReportFigures()), query: whole, format: .table)
            .hasPrefix("Usage from the first call to 2025-01-01T00:00:00Z"))
        #expect(Timestamp.span(ReportQuery(since: day0, until: day0 + 1, groupBy: [])).hasPrefix("from 2025-01-01T00:00:00Z to"))
    }

    @Test func helpers() {
        #expect(Timestamp.iso8601(micros: 0) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.iso8601(micros: day0 + 3_723_000_042) == "2025-01-01T01:02:03.000042Z")
        #expect(Timestamp.iso8601(micros: -1) == "1969-12-31T23:59:59.999999Z")
        #expect(Decimal3.milliseconds(0) == "0.000")
        #expect(Decimal3.milliseconds(12_345) == "12.345")
        #expect(Decimal3.milliseconds(7) == "0.007")
        #expect(CSVRendering.quoted("plain") == "plain")
        #expect(CSVRendering.quoted("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(CSVRendering.quoted("a\r\nb") == "\"a\r\nb\"")
        #expect(JSONRendering.string("a\"b\\c\nd\u{1}é") == "\"a\\\"b\\\\c\\nd\\u0001é\"")
    }
}
