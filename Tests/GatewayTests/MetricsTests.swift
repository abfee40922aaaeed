import FakeLLM
import Foundation
@testable import Gateway
import Ledger
import Logging
import Policy
import Testing

/// One scrape of `GET /metrics`: each sample line's series (name and labels, as written) → value.
struct Scrape {
    let text: String
    let samples: [String: Double]

    init(_ text: String) {
        self.text = text
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            let value = line[line.index(after: space)...]
            samples[String(line[..<space])] = value == "+Inf" ? .infinity : Double(value)
        }
        self.samples = samples
    }

    static func of(_ h: ProxyHarness) async throws -> Scrape {
        let r = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/metrics")
        #expect(r.status == 200)
        #expect(r.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
        return Scrape(r.text)
    }

    subscript(series: String) -> Double? { samples[series] }
}

/// Spend of ledger rows in dollars, as the float counters show it.
private func usd(_ rows: [LedgerEntry]) -> Double {
    Double(rows.reduce(Int64(0)) { $0 + $1.cost.picodollars }) / 1e12
}

@Suite("Metrics")
struct MetricsTests {
    /// Alice and Carol (team research, plan pro with a daily budget), Bob on a plan with no money,
    /// Carol's plan allows one call a minute, `erin` (named by the service key) on a plan whose
    /// budget one `gpt-exact` call uses exactly; o4-* goes to a provider that answers 500.
    static let plans = """
        defaults: { plan: pro }
        plans:
          pro: { budget: { daily_usd: "1" } }
          slow: { requests_per_minute: 1, budget: { daily_usd: "1" } }
          broke: { budget: { monthly_usd: "0" } }
          exact: { max_output_tokens: 8, budget: { daily_usd: "0.000008" } }
        users:
          carol: { plan: slow }
          bob: { plan: broke }
          erin: { plan: exact }
        teams:
          research: { budget: { monthly_usd: "100" } }
        org:
          budget: { monthly_usd: "1000" }
          spend_rate: { usd_per_hour: "50" }
        keys: { attribute_end_users: ["svc-*"] }
        """

    static func providers(_ fake: String) -> String {
        """
        providers:
          openai:    { dialect: openai,    base_url: "\(fake)/v1", api_key_env: E2E_PROVIDER_KEY }
          anthropic: { dialect: anthropic, base_url: "\(fake)",    api_key_env: E2E_PROVIDER_KEY }
          broken:    { dialect: openai,    base_url: "\(fake)/v1", api_key_env: E2E_PROVIDER_KEY,
                       headers: { x-fake-fail: http-500 } }
          slow:      { dialect: openai,    base_url: "\(fake)/v1", api_key_env: E2E_PROVIDER_KEY,
                       headers: { x-fake-first-byte-delay-ms: "5000" } }
        models:
          - { match: "o4-*", provider: broken }
          - { match: "gpt-quota", provider: slow }
          - { match: "gpt-*", provider: openai }
          - { match: "claude-*", provider: anthropic }
        """
    }

    static func chat(_ model: String, stream: Bool = false) -> String {
        #"{"model":"\#(model)","stream":\#(stream),"messages":[{"role":"user","content":"hello"}]}"#
    }

    /// Sends the mixed traffic every check below reads.
    static func traffic(_ h: ProxyHarness) async throws {
        try h.writePolicy("providers.yaml", providers(h.fake.baseURL))
        #expect(h.server.reloadPolicy())
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat("gpt-4o-mini"), requestID: "ok-1").status == 200)
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat("gpt-4o-mini", stream: true),
                                 requestID: "ok-2").status == 200)
        let haiku = #"{"model":"claude-3-5-haiku-20241022","max_tokens":100,"messages":[{"role":"user","content":"hello"}]}"#
        #expect(try await h.post("/v1/messages", key: h.carolKey, dialect: "anthropic", json: haiku, requestID: "ok-3").status == 200)
        #expect(try await h.post("/v1/messages", key: h.carolKey, dialect: "anthropic", json: haiku, requestID: "rate-1").status == 429)
        #expect(try await h.post("/v1/chat/completions", key: h.serviceKey, json: chat("gpt-exact"), requestID: "ok-4",
                                 headers: [("x-tokenctl-user", "erin")]).status == 200)
        #expect(try await h.post("/v1/chat/completions", key: h.serviceKey, json: chat("o4-mini"), requestID: "err-1").status == 500)
        #expect(try await h.post("/v1/chat/completions", key: h.bobKey, json: chat("gpt-4o-mini"), requestID: "quota-1").status == 429)
        #expect(try await h.post("/v1/chat/completions", key: nil, json: "{}", requestID: "auth-1").status == 401)
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat("mystery-model-\(UUID())"),
                                 requestID: "model-1").status == 404)
    }

    @Test("GET /metrics after traffic: calls, latency, TTFT, errors, refusals, tokens and cost match the ledger")
    func countsMatchTheLedger() async throws {
        let h = try ProxyHarness(plansYAML: Self.plans)
        defer { h.shutdown() }
        try await Self.traffic(h)
        // The ledger's commit metrics count rows once SQLite has them, up to the writer's linger
        // after their answers.
        h.server.flushLedger()
        let m = try await Scrape.of(h)
        let rows = try h.allRows()

        #expect(m[#"tokenctl_requests_total{route="chat.completions",model="gpt-4o-mini",outcome="ok"}"#] == 2)
        #expect(m[#"tokenctl_request_duration_seconds_count{route="chat.completions",model="gpt-4o-mini",outcome="ok"}"#] == 2)
        #expect(m[#"tokenctl_ttft_seconds_count{route="chat.completions",model="gpt-4o-mini",outcome="ok"}"#] == 2)
        // A glob-priced model is labelled by its price entry's glob, an unrouted one as `other`.
        #expect(m[#"tokenctl_requests_total{route="messages",model="claude-3-5-haiku-*",outcome="ok"}"#] == 1)
        #expect(m[#"tokenctl_requests_total{route="chat.completions",model="other",outcome="refused_unknown_model"}"#] == 1)
        #expect(m[#"tokenctl_requests_total{route="chat.completions",model="none",outcome="refused_auth"}"#] == 1)
        #expect(m[#"tokenctl_requests_total{route="chat.completions",model="o4-mini",outcome="upstream_error"}"#] == 1)
        #expect(!m.text.contains("mystery-model"))

        #expect(m[#"tokenctl_refusals_total{reason="auth",plan="none"}"#] == 1)
        // Who pays is known before the model is looked up: alice, on the default plan.
        #expect(m[#"tokenctl_refusals_total{reason="unknown_model",plan="pro"}"#] == 1)
        #expect(m[#"tokenctl_refusals_total{reason="rate",plan="slow"}"#] == 1)
        #expect(m[#"tokenctl_refusals_total{reason="quota",plan="broke"}"#] == 1)
        #expect(m[#"tokenctl_errors_total{kind="upstream_error",provider="broken"}"#] == 1)
        #expect(m[#"tokenctl_upstream_duration_seconds_count{provider="openai"}"#] == 3)
        #expect(m[#"tokenctl_upstream_duration_seconds_count{provider="broken"}"#] == 1)

        let mini = rows.filter { $0.modelRequested == "gpt-4o-mini" && $0.outcome == .ok }
        #expect(m[#"tokenctl_tokens_total{model="gpt-4o-mini",direction="output"}"#]
                == Double(mini.reduce(0) { $0 + $1.usage.outputTokens }))
        #expect(m[#"tokenctl_tokens_total{model="gpt-4o-mini",direction="input"}"#]
                == Double(mini.reduce(0) { $0 + $1.usage.inputTokens }))
        let research = try #require(m[#"tokenctl_cost_usd_total{model="gpt-4o-mini",team="research",plan="pro"}"#])
        #expect(abs(research - usd(mini)) < 1e-12)
        #expect(m[#"tokenctl_cost_usd_total{model="gpt-exact",team="support",plan="exact"}"#] == 0.000008)

        // Spend and active users today: alice, carol, the service key (its failed call) and erin.
        let paid = rows.filter { !$0.outcome.isRefusal }
        #expect(abs((m[#"tokenctl_spend_usd{period="day"}"#] ?? -1) - usd(paid)) < 1e-12)
        #expect(m[#"tokenctl_active_users{period="day"}"#] == 4)
        #expect(m[#"tokenctl_active_users{period="month"}"#] == 4)

        // Budgets: the team's share of its monthly 100 $, erin's plan fully used, nobody on pro near.
        let team = try #require(m[#"tokenctl_budget_utilisation_ratio{scope="team",team="research",period="month",dimension="usd"}"#])
        let researchRows = paid.filter { $0.team == "research" }
        #expect(abs(team - usd(researchRows) / 100) < 1e-12)
        #expect(m[#"tokenctl_budget_utilisation_ratio{scope="org",team="",period="month",dimension="usd"}"#] != nil)
        #expect(m[#"tokenctl_user_budget_utilisation_max_ratio{plan="exact",period="day",dimension="usd"}"#] == 1)
        #expect(m[#"tokenctl_users_over_budget{plan="exact",period="day",dimension="usd",threshold="1"}"#] == 1)
        #expect(m[#"tokenctl_users_over_budget{plan="pro",period="day",dimension="usd",threshold="0.8"}"#] == 0)
        #expect(m[#"tokenctl_users_over_budget{plan="broke",period="month",dimension="usd",threshold="1"}"#] == 0)
        #expect(m["tokenctl_org_spend_rate_limit_usd_per_hour"] == 50)
        #expect(abs((m["tokenctl_org_spend_last_hour_usd"] ?? -1) - usd(paid)) < 1e-12)

        #expect((m["tokenctl_ledger_batch_rows_count"] ?? 0) >= 1)
        #expect(m["tokenctl_ledger_batch_rows_sum"] == Double(rows.count))
        #expect((m["tokenctl_ledger_commit_duration_seconds_count"] ?? 0) >= 1)
        // Shown from the start (a handful of calls writes too few WAL pages for a checkpoint).
        for kind in ["background", "catch_up", "forced"] {
            #expect(m[#"tokenctl_ledger_checkpoints_total{kind="\#(kind)"}"#] != nil)
        }
        #expect(m["tokenctl_ledger_checkpoint_hold_seconds_count"] != nil)
        #expect(m[#"tokenctl_policy_info{version="\#(h.server.policy.version)"}"#] == 1)
        #expect(m["tokenctl_policy_reload_errors_total"] == 0)
        #expect(m["tokenctl_calls_in_flight"] == 0)
        #expect(m[#"tokenctl_upstream_backlog{provider="openai",stage="awaiting_head"}"#] == 0)
        #expect(m[#"tokenctl_upstream_in_flight{provider="anthropic"}"#] == 0)
        // No user names by default, not even the end user a service key named.
        for user in ["alice", "carol", "erin", "svc-chat"] { #expect(!m.text.contains(user)) }

        // A refused policy change shows as a reload error.
        try h.writePolicy("plans.yaml", "defaults: { plan: nowhere }\n")
        #expect(!h.server.reloadPolicy())
        #expect(try await Scrape.of(h)["tokenctl_policy_reload_errors_total"] == 1)
    }

    @Test("a call waiting for its provider's first byte shows in the backlog and in flight, then leaves both")
    func upstreamBacklog() async throws {
        let h = try ProxyHarness(plansYAML: Self.plans)
        defer { h.shutdown() }
        try h.writePolicy("providers.yaml", Self.providers(h.fake.baseURL))
        #expect(h.server.reloadPolicy())
        let waiting = #"tokenctl_upstream_backlog{provider="slow",stage="awaiting_head"}"#
        #expect(try await Scrape.of(h)[waiting] == 0)
        let call = Task { try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat("gpt-quota"), requestID: "slow-1") }
        // The provider holds its first byte for 5 s: on a loaded test run (every suite at once on
        // two cores) one scrape took over a second, and a 1.5 s wait was missed between two.
        var seen: Scrape?
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let m = try await Scrape.of(h)
            if m[waiting] == 1 { seen = m; break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let during = try #require(seen, "the slow call never showed in the backlog")
        #expect(during[#"tokenctl_upstream_in_flight{provider="slow"}"#] == 1)
        #expect(during["tokenctl_calls_in_flight"] == 1)
        #expect(try await call.value.status == 200)
        let after = try await Scrape.of(h)
        #expect(after[waiting] == 0)
        #expect(after[#"tokenctl_upstream_in_flight{provider="slow"}"#] == 0)
    }

    @Test("a scrape reads calls in flight after the backlog gauges: a call in a backlog is never missing from it")
    func inFlightIsReadAfterTheBacklog() throws {
        let h = try ProxyHarness(plansYAML: Self.plans)
        defer { h.shutdown() }
        let policy = try PolicyLoader.load(directory: h.policyDirectory.path, environment: h.environment)
        let metrics = GatewayMetrics(policies: PolicyReloader(policy: policy, directory: nil, environment: [:],
                                                              logger: Logger(label: "test")),
                                     enforcer: Enforcer(sharedQuotas: nil, timeZone: policy.plans.timeZone))
        var load = metrics.upstreamLoad(provider: "openai")
        // The scrape reads no call in flight; right after, a call is admitted and sent upstream
        // (another event loop), before the scrape has read the backlog gauges or after.
        let seenInFlight = 0
        let scrape = Scrape(String(decoding: metrics.render(
            policyVersion: "v", reloadErrors: 0,
            callsInFlight: { load.sent(); return seenInFlight }(), openReservations: 0, ledgerBacklog: 0,
            connections: (open: 0, refused: 0)), as: UTF8.self))
        let backlog = try #require(scrape[#"tokenctl_upstream_backlog{provider="openai",stage="awaiting_head"}"#])
        let inFlight = try #require(scrape["tokenctl_calls_in_flight"])
        #expect(inFlight >= backlog, "a call in the backlog must count as in flight in the same scrape")
        load.ended()
    }

    @Test("metrics.user_labels: top labels only the top N spenders of the day and month")
    func topUsers() async throws {
        let h = try ProxyHarness(gatewayYAML: "metrics: { user_labels: top, top_users: 1 }\n", plansYAML: Self.plans)
        defer { h.shutdown() }
        try await Self.traffic(h)
        let m = try await Scrape.of(h)
        let top = m.samples.keys.filter { $0.hasPrefix("tokenctl_top_user_spend_usd{") }.sorted()
        // The biggest spender by the ledger (Carol's Claude call costs more than Alice's two).
        let paid = try h.allRows().filter { !$0.outcome.isRefusal }
        let spend = Dictionary(grouping: paid, by: { $0.user ?? "" }).mapValues(usd)
        let biggest = try #require(spend.max { $0.value < $1.value })
        #expect(top == [#"tokenctl_top_user_spend_usd{user="\#(biggest.key)",period="day"}"#,
                        #"tokenctl_top_user_spend_usd{user="\#(biggest.key)",period="month"}"#])
        #expect(abs((m[top[0]] ?? -1) - biggest.value) < 1e-12)
        #expect(spend.count == 4)
    }

    @Test("after a restart, today's spend and active users come back from the ledger")
    func activityIsRestored() async throws {
        let h = try ProxyHarness(plansYAML: Self.plans)
        defer { h.shutdown() }
        try await Self.traffic(h)
        let before = try await Scrape.of(h)
        try h.server.shutdown()
        var logger = Logger(label: "e2e")
        logger.logLevel = .warning
        let policy = try PolicyLoader.load(directory: h.policyDirectory.path, environment: h.environment)
        let again = try GatewayServer.start(configuration: GatewayConfiguration(port: 0, eventLoopThreads: 1),
                                            policy: policy, environment: h.environment, databasePath: h.dbPath,
                                            logger: logger)
        defer { try? again.shutdown() }
        let r = try await TestHTTPClient.send(port: again.port, method: .GET, path: "/metrics")
        let after = Scrape(r.text)
        for series in [#"tokenctl_spend_usd{period="day"}"#, #"tokenctl_active_users{period="day"}"#,
                       #"tokenctl_active_users{period="month"}"#,
                       #"tokenctl_budget_utilisation_ratio{scope="team",team="research",period="month",dimension="usd"}"#] {
            let expected = try #require(before[series])
            #expect(abs((after[series] ?? -1) - expected) < 1e-12, "\(series)")
        }
        #expect(after[#"tokenctl_active_users{period="day"}"#] == 4)
    }
}
