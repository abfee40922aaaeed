import Foundation
@testable import Ledger
import Metering
import NIOHTTP1
import Policy
import Reports
import Testing
@testable import Gateway

@Suite("Admin API and dashboard")
struct AdminDashboardTests {
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}"#
    static let chatStream = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
    static let claude = #"{"model":"claude-3-5-haiku-20241022","max_tokens":16,"messages":[{"role":"user","content":"x"}]}"#

    func get(_ h: ProxyHarness, _ path: String, key: String?) async throws -> ReceivedResponse {
        try await TestHTTPClient.send(port: h.port, method: .GET, path: path,
                                      headers: key.map { [("authorization", "Bearer \($0)")] } ?? [])
    }

    @Test("admin routes: no key or a bad key 401, a caller key 403, the admin key 200; none recorded in the ledger")
    func adminRouteRefusals() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        for path in ["/admin/api/health", "/admin/api/report", "/admin/api/report?since=garbage", "/admin/api/nope"] {
            let none = try await get(h, path, key: nil)
            #expect(none.status == 401, "\(path)")
            #expect(try errorObject(none)["code"] as? String == "invalid_api_key")
            let bad = try await get(h, path, key: "tk-not-a-real-key-000000000000000000000")
            #expect(bad.status == 401, "\(path)")
            let caller = try await get(h, path, key: h.aliceKey)
            #expect(caller.status == 403, "\(path)")
            #expect(try errorObject(caller)["code"] as? String == "wrong_key_role")
            #expect(try errorObject(caller)["type"] as? String == "permission_error")
        }
        // The key is also taken from x-api-key (Anthropic SDK style); an admin key read that way works.
        let viaHeader = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/admin/api/health",
                                                      headers: [("x-api-key", h.adminKey)])
        #expect(viaHeader.status == 200)
        #expect(try await get(h, "/admin/api/health", key: h.adminKey).status == 200)
        let unknown = try await get(h, "/admin/api/nope", key: h.adminKey)
        #expect(unknown.status == 404)
        #expect(try errorObject(unknown)["code"] as? String == "not_found")
        let post = try await TestHTTPClient.send(port: h.port, method: .POST, path: "/admin/api/health",
                                                 headers: [("authorization", "Bearer \(h.adminKey)")], body: Array("{}".utf8))
        #expect(post.status == 405)
        #expect(post.header("allow") == "GET")
        let postUnknown = try await TestHTTPClient.send(port: h.port, method: .POST, path: "/admin/api/nope",
                                                        headers: [("authorization", "Bearer \(h.adminKey)")], body: Array("{}".utf8))
        #expect(postUnknown.status == 404)
        // Admin traffic and its refusals are not model calls: the ledger holds none of them.
        #expect(try h.allRows().isEmpty)
    }

    @Test("an admin key is refused on model routes with 403 in the caller's dialect, recorded, never forwarded")
    func adminKeyCannotCallModels() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let openai = try await h.post("/v1/chat/completions", key: h.adminKey, json: Self.chat, requestID: "adm-1")
        #expect(openai.status == 403)
        #expect(try errorObject(openai)["code"] as? String == "wrong_key_role")
        #expect(try errorObject(openai)["type"] as? String == "permission_error")
        let anthropic = try await h.post("/v1/messages", key: h.adminKey, dialect: "anthropic", json: Self.claude,
                                         requestID: "adm-2")
        #expect(anthropic.status == 403)
        let body = try jsonObject(anthropic)
        #expect(body["type"] as? String == "error")
        #expect((body["error"] as? [String: Any])?["type"] as? String == "permission_error")
        let models = try await get(h, "/v1/models", key: h.adminKey)
        #expect(models.status == 403)
        #expect(h.fake.requestCount == 0, "nothing reached the provider")
        let row = try #require(try h.row("adm-1"))
        #expect(row.outcome == .refusedAuth && row.status == 403 && row.user == "ops" && row.cost == .zero)
        // Ordinary keys still work.
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "ok-1").status == 200)
    }

    @Test("GET /dashboard: one HTML page, no external references, no data, strict CSP")
    func pageIsSelfContained() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        _ = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "p-1")
        let page = try await get(h, "/dashboard", key: nil)
        #expect(page.status == 200)
        #expect(page.header("content-type") == "text/html; charset=utf-8")
        #expect(page.header("content-security-policy")?.contains("default-src 'none'") == true)
        #expect(page.header("content-security-policy")?.contains("connect-src 'self'") == true)
        #expect(page.header("cache-control") == "no-store")
        let html = page.text
        #expect(html.hasPrefix("<!doctype html>"))
        #expect(!html.contains("http://") && !html.contains("https://"))
        #expect(html.range(of: #"(src|href)\s*=\s*["']?\s*//"#, options: .regularExpression) == nil)
        #expect(html.range(of: #"<(link|img|iframe|object|embed)\b"#, options: .regularExpression) == nil)
        #expect(html.range(of: #"<script\b[^>]*\bsrc\b"#, options: .regularExpression) == nil)
        #expect(!html.contains("alice"), "the shell carries no ledger data")
        #expect(html.contains("/admin/api/report") && html.contains("/admin/api/health"))
        #expect(html.contains("Authorization") && html.contains("sessionStorage"))
    }

    @Test("/admin/api/report is tokenctl report --format json for the same query, to the byte")
    func reportMatchesLedgerReader() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let since = UnixTime.nowMicros() - 60_000_000
        let calls: [(String, String, String, String)] = [
            ("/v1/chat/completions", "openai", h.aliceKey, Self.chat),
            ("/v1/chat/completions", "openai", h.aliceKey, Self.chatStream),
            ("/v1/chat/completions", "openai", h.bobKey, Self.chat),
            ("/v1/messages", "anthropic", h.carolKey, Self.claude),
            ("/v1/chat/completions", "openai", h.bobKey, #"{"model":"no-such-model","messages":[]}"#),
        ]
        for (i, call) in calls.enumerated() {
            _ = try await h.post(call.0, key: call.2, dialect: call.1, json: call.3, requestID: "r-\(i)")
        }
        let until = UnixTime.nowMicros() + 60_000_000
        let iso = { (micros: Int64) in Date(timeIntervalSince1970: Double(micros / 1_000_000)).formatted(.iso8601) }
        let (from, to) = (since / 1_000_000 * 1_000_000, until / 1_000_000 * 1_000_000)
        h.server.flushLedger()
        let reader = try LedgerReader(path: h.dbPath)
        defer { reader.close() }
        for groups in [[ReportDimension.user], [.user, .model], [.team], [.day, .user], []] {
            let by = groups.map { "&by=\($0.rawValue)" }.joined()
            let r = try await get(h, "/admin/api/report?since=\(iso(from))&until=\(iso(to))\(by)", key: h.adminKey)
            #expect(r.status == 200, "\(r.text)")
            #expect(r.header("content-type") == "application/json")
            let query = ReportQuery(since: from, until: to, groupBy: groups)
            #expect(r.text == ReportRenderer.render(try reader.report(query), query: query, format: .json), "by \(groups)")
        }
        // A filter and top: the same folding as `report --top`.
        let filtered = try await get(h, "/admin/api/report?since=\(iso(from))&until=\(iso(to))&by=model&user=alice&top=1",
                                     key: h.adminKey)
        let query = ReportQuery(since: from, until: to, groupBy: [.model], filters: [.user: "alice"])
        #expect(filtered.text == ReportRenderer.render(try reader.report(query).top(1), query: query, format: .json))
        // summary=true: the same summary object as `tokenctl report --format json` (one definition
        // of active users, daily cost per active user, retries, burn rate, budgets, forecast).
        let summarised = try await get(h, "/admin/api/report?since=\(iso(from))&until=\(iso(to))&by=day&summary=true",
                                       key: h.adminKey)
        let dayQuery = ReportQuery(since: from, until: to, groupBy: [.day])
        let summary = try ReportSummary.compute(reader: reader, query: dayQuery, plans: h.server.policy.plans,
                                                now: UnixTime.nowMicros(), models: false)
        let expected = ReportRenderer.render(try reader.report(dayQuery), query: dayQuery, format: .json, summary: summary)
        // The burn window of an open period ends "now", which differs by the time between the two.
        func withoutBurn(_ text: String) throws -> NSDictionary {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            var summary = try #require(object["summary"] as? [String: Any])
            summary["burn_rate"] = nil
            summary["forecast"] = nil
            var copy = object
            copy["summary"] = summary
            return copy as NSDictionary
        }
        #expect(try withoutBurn(summarised.text) == withoutBurn(expected))
        #expect(try jsonObject(summarised)["summary"] != nil)
        let bad = try await get(h, "/admin/api/report?summary=yes", key: h.adminKey)
        #expect(bad.status == 400 && bad.text.contains("\"param\":\"summary\""))
        // budgets=false: the same summary without its budgets (the dashboard shows health's).
        let lean = try await get(h, "/admin/api/report?since=\(iso(from))&until=\(iso(to))&by=day&summary=true&budgets=false",
                                 key: h.adminKey)
        let leanSummary = try ReportSummary.compute(reader: reader, query: dayQuery, plans: nil,
                                                    now: UnixTime.nowMicros(), models: false)
        #expect(try withoutBurn(lean.text) == withoutBurn(ReportRenderer.render(try reader.report(dayQuery), query: dayQuery,
                                                                               format: .json, summary: leanSummary)))
        #expect(leanSummary.budgets.isEmpty)
        let badBudgets = try await get(h, "/admin/api/report?summary=true&budgets=no", key: h.adminKey)
        #expect(badBudgets.status == 400 && badBudgets.text.contains("\"param\":\"budgets\""))
        // And the totals are the ledger's sum, to the picodollar.
        var sum = Money.Total()
        for row in try h.allRows() { sum.add(row.cost) }
        let totals = try #require(try jsonObject(try await get(h, "/admin/api/report?since=\(iso(from))", key: h.adminKey))["totals"] as? [String: Any])
        #expect(totals["cost_picodollars"] as? String == String(sum.picodollars))
        #expect(totals["requests"] as? Int == calls.count)
    }

    @Test("/admin/api/health: live gauges, the last hour from the ledger, budget use")
    func healthFields() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: open }
            plans:
              open: {}
              capped: { budget: { monthly_usd: "5" } }
            users: { alice: { plan: capped } }
            """)
        defer { h.shutdown() }
        _ = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "h-1")
        _ = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chatStream, requestID: "h-2")
        _ = try await h.post("/v1/chat/completions", key: h.bobKey, json: Self.chat, requestID: "h-3")
        _ = try await h.post("/v1/chat/completions", key: "tk-bad", json: Self.chat, requestID: "h-4")
        let r = try await get(h, "/admin/api/health", key: h.adminKey)
        #expect(r.status == 200)
        let health = try jsonObject(r)
        let policy = try #require(health["policy"] as? [String: Any])
        #expect(policy["version"] as? String == h.server.policy.version)
        #expect(policy["reload_errors"] as? Int == 0)
        #expect(policy["time_zone"] as? String == ZoneName.of(h.server.policy.plans.timeZone))   // "UTC", as reports print it
        #expect(health["calls_in_flight"] as? Int == 0)
        #expect(health["open_reservations"] as? Int == 0)
        #expect(health["ledger_backlog"] as? Int == 0)
        let last = try #require(health["last_hour"] as? [String: Any])
        #expect(last["requests"] as? Int == 4)
        #expect(last["refused"] as? Int == 1)
        #expect(last["errors"] as? Int == 0)
        #expect(last["error_rate"] as? Double == 0)
        #expect((last["latency_p95_ms"] as? Double ?? 0) > 0)
        var sum = Money.Total()
        for row in try h.allRows() { sum.add(row.cost) }
        #expect(last["cost_usd"] as? String == sum.formatted(decimals: 6))
        let minutes = try #require(health["per_minute"] as? [[String: Any]])
        #expect(minutes.reduce(0) { $0 + ($1["requests"] as? Int ?? 0) } == 4)
        let budgets = try #require(health["budgets"] as? [[String: Any]])
        #expect(budgets.count == 1)
        let alice = try #require(budgets.first)
        #expect(alice["scope"] as? String == "user" && alice["name"] as? String == "alice" && alice["period"] as? String == "month")
        #expect(alice["limit_usd"] as? String == "5.000000")
        let aliceSpend = try h.allRows().filter { $0.user == "alice" }.reduce(Money.zero) { Money(picodollars: $0.picodollars + $1.cost.picodollars) }
        #expect(alice["used_usd"] as? String == aliceSpend.formatted())
        #expect(aliceSpend > .zero)
    }

    @Test("health lists the 100 most used budgets, by the larger of their money and token shares")
    func healthMostUsedBudgets() {
        func standing(_ n: Int, usdLeft: Int64?, tokensLeft: Int? = nil) -> QuotaStanding {
            QuotaStanding(limit: BudgetLimit(scope: .user("u\(n)"), period: .month,
                                             usd: usdLeft == nil ? nil : Money(picodollars: 1_000),
                                             tokens: tokensLeft == nil ? nil : 1_000),
                          usdLeft: usdLeft.map { Money(picodollars: $0) }, tokensLeft: tokensLeft, resetsAt: 0)
        }
        // 150 money budgets used 0.0 … 0.149, then one by tokens (0.9), one at both (0.2 money, 0.95 tokens).
        var standings = (0..<150).map { standing($0, usdLeft: 1_000 - Int64($0)) }
        standings.append(standing(150, usdLeft: nil, tokensLeft: 100))
        standings.append(standing(151, usdLeft: 800, tokensLeft: 50))
        let listed = AdminHealth.mostUsed(standings.shuffled())
        #expect(listed.count == AdminHealth.maxBudgets)
        #expect(listed.map(\.standing.limit.scope).prefix(4) == [.user("u151"), .user("u150"), .user("u149"), .user("u148")])
        #expect(listed.map(\.share).prefix(3) == [0.95, 0.9, 0.149])
        #expect(listed.last?.standing.limit.scope == .user("u52"))
    }

    @Test("a health answer that took long is reused for five times as long; a quick one never")
    func healthReuse() {
        let slow = AdminHealth.Reading(at: 1_000_000, tookMicros: 400_000, body: "{}")
        #expect(slow.isFresh(at: 1_000_000) && slow.isFresh(at: 2_999_999))
        #expect(!slow.isFresh(at: 3_000_000))
        #expect(!slow.isFresh(at: 999_999))  // a clock set back: computed again
        let quick = AdminHealth.Reading(at: 1_000_000, tookMicros: 49_999, body: "{}")
        #expect(!quick.isFresh(at: 1_000_001))
    }

    @Test("bad parameters: 400 naming the parameter, before any ledger work")
    func badParameters() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let cases: [(String, String)] = [
            ("/admin/api/report?since=yesterday-ish", "since"),
            ("/admin/api/report?until=2026-13-45", "until"),
            ("/admin/api/report?since=2026-02-01&until=2026-01-01", "since"),
            ("/admin/api/report?since=2020-01-01&until=2026-01-01", "since"),
            ("/admin/api/report?period=2026-1x", "period"),
            ("/admin/api/report?period=2026-01&since=2026-01-01", "period"),
            ("/admin/api/report?by=colour", "by"),
            ("/admin/api/report?by=user&by=user", "by"),
            ("/admin/api/report?by=user&by=team&by=model&by=day", "by"),
            ("/admin/api/report?tz=Mars/Olympus", "tz"),
            ("/admin/api/report?top=0", "top"),
            ("/admin/api/report?top=1001", "top"),
            ("/admin/api/report?top=ten", "top"),
            ("/admin/api/report?user=", "user"),
            ("/admin/api/report?until=7d&until=1d", "until"),
            ("/admin/api/report?format=csv", "format"),
            ("/admin/api/report?since=%ZZ", "since"),
            ("/admin/api/health?window=5m", "window"),
        ]
        for (path, parameter) in cases {
            let r = try await get(h, path, key: h.adminKey)
            #expect(r.status == 400, "\(path): \(r.text)")
            #expect(try errorObject(r)["param"] as? String == parameter, "\(path): \(r.text)")
            #expect(try errorObject(r)["code"] as? String == "invalid_request")
        }
        // Good ones, for contrast: relative, a month, a zone, percent-encoded date-times.
        for path in ["/admin/api/report?since=7d&by=day&tz=Europe%2FParis", "/admin/api/report?period=2026-01&by=team",
                     "/admin/api/report?since=2026-01-01T00%3A00%3A00Z&until=2026-01-02&by=user&top=5"] {
            #expect(try await get(h, path, key: h.adminKey).status == 200, "\(path)")
        }
    }

    /// The dashboard's "month to date" and any date asked for are the policy's calendar, as
    /// `tokenctl report` reads them, unless `tz` names another zone.
    @Test("report dates, months and mtd are read in the policy's zone or tz; an unencoded offset's + is kept")
    func reportDatesInTheZone() throws {
        let newYork = TimeZone(identifier: "America/New_York")!
        let hour: Int64 = 3_600_000_000
        let december = Day("2026-12-01")!.unixSeconds * UnixTime.microsPerSecond
        let now = december + 5 * UnixTime.microsPerDay + 12 * hour
        func query(_ text: String) throws -> ReportQuery {
            try AdminReportRequest(queryString: text, now: now, defaultTimeZone: newYork).query
        }
        #expect(try query("period=2026-12").since == december + 5 * hour)
        #expect(try query("since=mtd").since == december + 5 * hour)
        #expect(try query("since=2026-12-05").since == december + 4 * UnixTime.microsPerDay + 5 * hour)
        #expect(try query("since=2026-12-05&tz=Europe%2FParis").since == december + 4 * UnixTime.microsPerDay - hour)
        #expect(try query("since=2026-12-06T01:00:00").since == december + 5 * UnixTime.microsPerDay + 6 * hour)
        #expect(try query("since=2026-12-06T06:00:00+05:00").since == december + 5 * UnixTime.microsPerDay + hour)
        #expect(throws: Refusal.self) { try query("since=2026-12-06T01:00:00Zjunk") }
        #expect(try query("since=400d").since == now - 400 * UnixTime.microsPerDay)
        #expect(throws: Refusal.self) { try query("since=401d") }
    }

    @Test("the admin API's ledger connection cannot write, and still reports")
    func readerIsReadOnly() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ro-\(UUID().uuidString).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try KeyStore(path: path).close()  // creates and migrates the file
        let reader = try LedgerReader(path: path, readOnly: true)
        defer { reader.close() }
        #expect(throws: LedgerError.self) { try reader.withConnection { try $0.execute("DELETE FROM api_keys") } }
        #expect(try reader.report(ReportQuery(since: 0, until: 1, groupBy: [.user])).rows.isEmpty)
        let writable = try LedgerReader(path: path)
        defer { writable.close() }
        try writable.withConnection { try $0.execute("DELETE FROM api_keys") }
    }
}
