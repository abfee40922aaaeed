import Foundation
import Ledger
import Metering
import Reports
import Testing

@Suite("Report over a ledger the proxy wrote")
struct ProxyReportTests {
    @Test("report totals equal the sums of the rows, to the picodollar")
    func totalsMatchRows() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-cached-tokens": "3"])
        defer { h.shutdown() }
        let calls: [(String, String, String, String)] = [
            ("/v1/chat/completions", "openai", h.aliceKey, #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a"}]}"#),
            ("/v1/chat/completions", "openai", h.bobKey, #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"b"}]}"#),
            ("/v1/messages", "anthropic", h.aliceKey, #"{"model":"claude-3-5-haiku-20241022","max_tokens":5,"messages":[{"role":"user","content":"c"}]}"#),
            ("/v1/embeddings", "openai", h.bobKey, #"{"model":"text-embedding-3-small","input":"d"}"#),
            ("/v1/chat/completions", "openai", "tk-bad", #"{"model":"gpt-4o-mini","messages":[]}"#),
        ]
        for (i, call) in calls.enumerated() {
            _ = try await h.post(call.0, key: call.2, dialect: call.1, json: call.3, requestID: "rep-\(i)")
        }
        let rows = try h.allRows()
        #expect(rows.count == calls.count)
        let reader = try LedgerReader(path: h.dbPath)
        defer { reader.close() }
        let report = try reader.report(ReportQuery(since: 0, until: Int64.max, groupBy: [.user]))
        var sum = Money.Total()
        for row in rows { sum.add(row.cost) }
        #expect(report.totals.cost == sum)
        #expect(report.totals.requests == calls.count)
        #expect(report.totals.refused == 1)
        #expect(report.rows.count == 3)  // alice, bob, (none)

        let json = ReportRenderer.render(report, query: report.query, format: .json)
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let totals = try #require(parsed["totals"] as? [String: Any])
        #expect(totals["cost_picodollars"] as? String == String(sum.picodollars))
    }
}
