import Foundation
import Ledger
import Metering
import Policy
import Testing
@testable import Reports

/// The summary on a ledger small enough to compute by hand (see each expectation's arithmetic).
@Suite("report summary")
struct ReportSummaryTests {
    static let hour: Int64 = 3_600_000_000
    static let dollar: Int64 = 1_000_000_000_000

    /// Three UTC days of 2025-01:
    /// - Jan 1: alice 10:00 body A $1.00, alice 10:01 body A again $1.00 (a retry: 60 s later),
    ///   bob 11:00 $2.00, a call without a user (refused before identification) at 12:00.
    /// - Jan 2: alice 09:00 body C $3.00, alice 09:05 body C $0.50 (not a retry: 300 s later),
    ///   carol 10:00 refused by quota ($0, still active), bob 10:00 body E $1.50 and 10:01:30 body E
    ///   $1.50 (a retry: 90 s later).
    /// - Jan 3: carol 23:30 $4.00.
    /// Paid calls use 1,000 input and 100 output tokens.
    static func entries() -> [LedgerEntry] {
        var n = 0
        func call(_ day: Int64, _ h: Int64, _ m: Int64, _ s: Int64 = 0, user: String?, team: String? = nil,
                  body: Int64?, cents: Int64, outcome: Outcome = .ok) -> LedgerEntry {
            n += 1
            let start = day0 + day * 24 * hour + h * hour + m * 60_000_000 + s * 1_000_000
            let paid = !outcome.isRefusal
            return LedgerEntry(
                id: "s\(n)", requestId: "r\(n)", startedAt: start, firstByteAt: paid ? start + 100_000 : nil,
                endedAt: start + (paid ? 400_000 : 1_000), user: user, team: team, dialect: .openai,
                route: "chat.completions", modelRequested: "gpt-4o-mini", status: paid ? 200 : 429, outcome: outcome,
                usage: paid ? Usage(inputTokens: 1_000, outputTokens: 100) : .zero, usageSource: .provider,
                cost: Money(picodollars: cents * dollar / 100), ttftMicros: paid ? 100_000 : nil, requestHash: body)
        }
        return [
            call(0, 10, 0, user: "alice", team: "research", body: 1, cents: 100),
            call(0, 10, 1, user: "alice", team: "research", body: 1, cents: 100),
            call(0, 11, 0, user: "bob", team: "research", body: 2, cents: 200),
            call(0, 12, 0, user: nil, body: nil, cents: 0, outcome: .refusedAuth),
            call(1, 9, 0, user: "alice", team: "research", body: 3, cents: 300),
            call(1, 9, 5, user: "alice", team: "research", body: 3, cents: 50),
            call(1, 10, 0, user: "carol", body: 4, cents: 0, outcome: .refusedQuota),
            call(1, 10, 0, user: "bob", team: "research", body: 5, cents: 150),
            call(1, 10, 1, 30, user: "bob", team: "research", body: 5, cents: 150),
            call(2, 23, 30, user: "carol", body: 6, cents: 400),
        ]
    }

    static let plans = """
        time_zone: UTC
        defaults: { plan: basic }
        plans:
          basic: { budget: { daily_usd: "5", monthly_usd: "20" } }
        users:
          alice: { budget: { monthly_usd: "10" } }
        teams:
          research: { budget: { monthly_usd: "100" } }
        org:
          budget: { monthly_usd: "1000" }
        """

    private func summary(zone: String = "UTC", now: Int64 = day0 + 400 * 24 * hour,
                         filters: [ReportDimension: String] = [:]) throws -> ReportSummary {
        let dir = try TemporaryDirectory()
        let reader = try ledger(with: Self.entries(), in: dir)
        defer { reader.close() }
        var query = ReportQuery(since: day0, until: day0 + 3 * 24 * Self.hour, groupBy: [.team], filters: filters)
        query.timeZone = TimeZone(identifier: zone)!
        return try ReportSummary.compute(reader: reader, query: query,
                                         plans: try loadTestPolicy(plans: Self.plans).plans, now: now)
    }

    @Test("with no start and no calls there is no burn window (not one from 1970)")
    func emptyLedgerHasNoBurnWindow() throws {
        let dir = try TemporaryDirectory()
        let reader = try ledger(with: [], in: dir)
        defer { reader.close() }
        let now = day0 + 400 * 24 * Self.hour
        let s = try ReportSummary.compute(reader: reader, query: ReportQuery(since: 0, until: now), plans: nil, now: now)
        #expect(s.burnStart == s.burnEnd && s.tokensPerHour == nil && s.costPerHour == nil)
        #expect(SummaryText.facts(s).contains { $0.0 == "token burn rate" && $0.1 == "-" })
    }

    @Test("daily cost per active user, retry share, burn rate and forecast match the hand computation")
    func handComputed() throws {
        let s = try summary()
        // Total $1 + $1 + $2 + $3 + $0.50 + $1.50 + $1.50 + $4 = $14.50 over 10 calls.
        #expect(s.totals.cost.picodollars == 1_450 * Int128(Self.dollar) / 100)
        #expect(s.totals.requests == 10)
        // alice, bob, carol; refused calls make nobody active (carol's on Jan 2, the one without a user).
        #expect(s.activeUsers == 3)
        #expect(s.days.map(\.day) == ["2025-01-01", "2025-01-02", "2025-01-03"])
        #expect(s.days.map(\.activeUsers) == [2, 2, 1])
        // Jan 1: $4.00 / 2 = $2.00. Jan 2: $6.50 / 2 = $3.25. Jan 3: $4.00 / 1 = $4.00.
        #expect(s.days.map { $0.costPerActiveUser?.picodollars } == [2_000_000_000_000, 3_250_000_000_000, 4_000_000_000_000])
        // Mean of the three: (2 + 3.25 + 4) / 3 = $3.083333333333 (to the pico-dollar, rounded down).
        #expect(s.meanDailyCostPerActiveUser?.picodollars == 3_083_333_333_333)
        #expect(s.meanDailyCostPerActiveUser?.formatted(decimals: 6) == "3.083333")
        // Retries: alice's second body A (60 s) and bob's second body E (90 s); alice's second body C
        // came 300 s later. 2 of 10 calls = 20 %; $1.00 + $1.50 = $2.50 of $14.50 = 17.2413…%.
        #expect(s.totals.retries == 2)
        #expect(s.totals.retryCost.picodollars == 250 * Int128(Self.dollar) / 100)
        #expect(s.retryShareOfCalls == "20.00")
        #expect(s.retryShareOfCost == "17.24")
        // Burn: 8 paid calls × 1,100 tokens = 8,800 tokens over the 72 h period: 122.2 → 122 tokens/h;
        // $14.50 / 72 h = $0.201388888888/h.
        #expect(s.tokens == 8_800)
        #expect(s.tokensPerHour == 122)
        #expect(s.costPerHour?.picodollars == 201_388_888_888)
        // Forecast for January: $14.50 so far + $14.50 × (28 days left / 3 days) = $14.50 + $135.333… .
        let f = try #require(s.forecast)
        #expect(f.monthToDate.picodollars == 14_500_000_000_000)
        #expect(f.projected.picodollars == 14_500_000_000_000 + 135_333_333_333_333)
        #expect(s.users.map(\.user) == ["alice", "bob", "carol"])  // $5.50, $5.00, $4.00
    }

    @Test("budget utilisation per payer in the period containing the report's end, most used first")
    func budgets() throws {
        let s = try summary()
        let rows = s.budgets.map { "\($0.scope) \($0.period.rawValue) \(SummaryText.percent($0.utilisationHundredths))" }
        // carol on Jan 3: $4 of her daily $5; alice: $5.50 of her own monthly $10; bob: $5 of $20;
        // carol: $4 of $20; team research: $10.50 of $100; org: $14.50 of $1000. alice and bob
        // have daily budgets too, but made no call on Jan 3.
        #expect(rows == ["user carol day 80.00%", "user alice month 55.00%", "user bob month 25.00%",
                         "user carol month 20.00%", "team research month 10.50%", "org month 1.45%"])
        #expect(s.budgets.first?.start == day0 + 2 * 24 * Self.hour)
        // The day's budget came from the report's own rows, the month's from an engine query;
        // a filtered report (every call is gpt-4o-mini) queries all of them: the same figures.
        let filtered = try summary(filters: [.model: "gpt-4o-mini"])
        #expect(filtered.budgets == s.budgets)
        #expect(filtered.forecast == s.forecast)
        // Budgets never narrow with the report's filters.
        #expect(try summary(filters: [.user: "bob"]).budgets == s.budgets)
        // The text formats say where the limits come from, when the caller says.
        var sourced = s
        sourced.budgetSource = "policies/plans.yaml"
        #expect(SummaryText.sections(sourced).map(\.title).contains("Budget utilisation, limits from policies/plans.yaml"))
        #expect(SummaryText.sections(s).map(\.title).contains("Budget utilisation"))
    }

    @Test("an open period burns over the time elapsed, and the forecast runs to the month's end")
    func openPeriod() throws {
        // Now is Jan 3 23:45, after the last call: the window is Jan 1 00:00 to now, 71 h 45 min.
        let now = day0 + 2 * 24 * Self.hour + 23 * Self.hour + 45 * 60_000_000
        let s = try summary(now: now)
        #expect(s.burnEnd == now)
        #expect(SummaryText.hours(s.burnEnd - s.burnStart) == "71.8")
        // $14.50 so far; per minute $14.50 / 4,305; January has 44,640 minutes, 40,335 left after now.
        let f = try #require(s.forecast)
        #expect(f.monthToDate.picodollars == 14_500_000_000_000)
        #expect(f.projected.picodollars == 14_500_000_000_000 + 14_500_000_000_000 * 40_335 / 4_305)
    }

    @Test("days follow the report's zone: in Asia/Tokyo (UTC+9) carol's Jan 3 23:30 call is on Jan 4")
    func zone() throws {
        let s = try summary(zone: "Asia/Tokyo")
        #expect(s.days.last?.day == "2025-01-04")
        #expect(s.days.last?.activeUsers == 1)
    }

    @Test("every format carries the summary; the rows' CSV stays clean without it")
    func formats() throws {
        let dir = try TemporaryDirectory()
        let reader = try ledger(with: Self.entries(), in: dir)
        defer { reader.close() }
        let query = ReportQuery(since: day0, until: day0 + 3 * 24 * Self.hour, groupBy: [.user])
        let report = try reader.report(query)
        let s = try ReportSummary.compute(reader: reader, query: query,
                                          plans: try loadTestPolicy(plans: Self.plans).plans, now: day0 + 400 * 24 * Self.hour)

        let table = ReportRenderer.render(report, query: query, format: .table, summary: s)
        #expect(table.contains("daily cost per active user  $3.083333 (mean of 3 days)"))
        #expect(table.contains("retry share                 2 of 10 calls (20.00%), $2.500000 of cost (17.24%)"))
        #expect(table.contains("month-end forecast          $149.833333 for 2025-01 (so far $14.500000)"))
        #expect(table.contains("  user carol     day     2025-01-03T00:00:00Z   $4.000000      $5.000000   1,100            -  80.00%\n"))

        let markdown = ReportRenderer.render(report, query: query, format: .markdown, summary: s)
        #expect(markdown.contains("| active users | 3 |"))
        #expect(markdown.contains("| 2025-01-02 | 2 | 5 | $6.500000 | $3.250000 |"))

        let json = ReportRenderer.render(report, query: query, format: .json, summary: s)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let summary = try #require(object["summary"] as? [String: Any])
        #expect(summary["daily_cost_per_active_user_mean_usd"] as? String == "3.083333")
        #expect(summary["active_users"] as? Int == 3)
        let retries = try #require(summary["retries"] as? [String: Any])
        #expect(retries["share_of_calls_pct"] as? Double == 20.0)
        #expect(retries["cost_picodollars"] as? String == "2500000000000")
        let budgets = try #require(summary["budgets"] as? [[String: Any]])
        #expect(budgets.first?["payer"] as? String == "carol")
        #expect(budgets.first?["utilisation_pct"] as? Double == 80.0)
        #expect(budgets.last?["payer"] is NSNull)
        let forecast = try #require(summary["forecast"] as? [String: Any])
        #expect(forecast["projected_picodollars"] as? String == "149833333333333")
        #expect((summary["days"] as? [Any])?.count == 3)

        // CSV: the rows alone (no summary) parse as one header plus records; the summary is its own CSV.
        let rows = try parseCSV(ReportRenderer.render(report, query: query, format: .csv))
        #expect(rows.count == 1 + report.rows.count)
        #expect(Set(rows.map(\.count)).count == 1)
        let facts = try parseCSV(ReportRenderer.render(report, query: query, format: .csv, summary: s))
        #expect(facts[0] == ["metric", "subject", "value"])
        #expect(Set(facts.map(\.count)) == [3])
        #expect(facts.contains(["daily_cost_per_active_user_mean_usd", "", "3.083333"]))
        #expect(facts.contains(["daily_cost_per_active_user_usd", "2025-01-02", "3.250000"]))
        #expect(facts.contains(["retry_share_of_cost_pct", "", "17.24"]))
        #expect(facts.contains(["budget_utilisation_pct", "user:carol/day", "80.00"]))
        #expect(facts.contains(["forecast_month_end_usd", "2025-01", "149.833333"]))
    }
}
