import FakeLLM
import Foundation
import Gateway
import Ledger
import Logging
import Metering
import Policy
import Testing

/// Plans enforced end to end: the real server, FakeLLM and the SQLite ledger.
@Suite("Plans: models, caps, rate limits, concurrency, quotas")
struct PlanEnforcementTests {
    static func chat(_ model: String = "gpt-4o-mini", maxTokens: Int? = nil, stream: Bool = false) -> String {
        let cap = maxTokens.map { #","max_tokens":\#($0)"# } ?? ""
        return #"{"model":"\#(model)","stream":\#(stream)\#(cap),"messages":[{"role":"user","content":"hello"}]}"#
    }

    @Test("a model outside the plan gets 403 naming model and plan")
    func modelNotAllowed() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: small }
            plans: { small: { models: ["gpt-4o-mini"] } }
            users: { bob: { plan: small, models: [] }, carol: { plan: small, models: ["gpt-4o-mini"] } }
            """)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat("o4-mini"), requestID: "m-1")
        #expect(r.status == 403)
        let message = try errorObject(r)["message"] as? String ?? ""
        #expect(message == "The model 'o4-mini' is not allowed on plan 'small' (see plans.yaml).")
        let refused = try #require(try h.row("m-1"))
        #expect(refused.outcome == .refusedModel && refused.plan == "small" && refused.provider == "openai")
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(), requestID: "m-2").status == 200)
        // A user's own list names the user, not the plan it replaced.
        let bob = try await h.post("/v1/chat/completions", key: h.bobKey, json: Self.chat(), requestID: "m-3")
        #expect(bob.status == 403)
        #expect(try errorObject(bob)["message"] as? String
                == "The model 'gpt-4o-mini' is not allowed for user 'bob' (users.bob.models in plans.yaml).")
        // Also when it is the same list as the plan's: editing the plan would not change it.
        let carol = try await h.post("/v1/chat/completions", key: h.carolKey, json: Self.chat("o4-mini"), requestID: "m-4")
        #expect(try errorObject(carol)["message"] as? String
                == "The model 'o4-mini' is not allowed for user 'carol' (users.carol.models in plans.yaml).")
    }

    @Test("output over the cap is clamped before it goes upstream, or refused when the plan rejects")
    func outputCap() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: clamped }
            plans:
              clamped: { max_output_tokens: 512 }
              strict: { max_output_tokens: 512, on_output_over_cap: reject }
            users: { bob: { plan: strict } }
            """)
        defer { h.shutdown() }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(maxTokens: 4_000), requestID: "cap-1")
        #expect(r.status == 200)
        let sent = String(decoding: try #require(h.fake.exchange(requestID: "cap-1")).requestBody, as: UTF8.self)
        #expect(sent.contains(#""max_tokens":512"#))
        let row = try #require(try h.row("cap-1"))
        #expect(row.outputCapRequested == 4_000 && row.outputCapApplied == 512 && row.plan == "clamped")

        let injected = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(), requestID: "cap-2")
        #expect(injected.status == 200)
        let sent2 = String(decoding: try #require(h.fake.exchange(requestID: "cap-2")).requestBody, as: UTF8.self)
        #expect(sent2.contains(#""max_completion_tokens":512"#))

        let refused = try await h.post("/v1/chat/completions", key: h.bobKey, json: Self.chat(maxTokens: 4_000), requestID: "cap-3")
        #expect(refused.status == 400)
        #expect(try errorObject(refused)["param"] as? String == "max_tokens")  // the field the client sent
        let capped = try #require(try h.row("cap-3"))
        // The body was read: its fingerprint is kept, so the same refused call sent again is a retry.
        #expect(capped.requestHash == Array(Self.chat(maxTokens: 4_000).utf8).withUnsafeBytes { RequestFingerprint.of($0) })
        #expect(capped.outcome == .refusedCap && capped.user == "bob" && capped.plan == "strict")
        #expect(capped.outputCapRequested == 4_000 && capped.outputCapApplied == nil)
        #expect(h.fake.exchange(requestID: "cap-3") == nil)
    }

    @Test("extended thinking under a clamped cap: its budget goes down with max_tokens; with no room for it, 400 naming thinking.budget_tokens")
    func thinkingUnderCap() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: clamped }
            plans:
              clamped: { max_output_tokens: 2048 }
              tight: { max_output_tokens: 1024 }
            users: { bob: { plan: tight } }
            """)
        defer { h.shutdown() }
        func thinking(_ budget: Int, maxTokens: Int = 16_000) -> String {
            #"{"model":"claude-3-5-haiku-20241022","max_tokens":\#(maxTokens),"thinking":{"type":"enabled","budget_tokens":\#(budget)},"messages":[{"role":"user","content":"hi"}]}"#
        }
        func sent(_ id: String) throws -> String {
            String(decoding: try #require(h.fake.exchange(requestID: id)).requestBody, as: UTF8.self)
        }
        // Anthropic refuses a budget at or above max_tokens: 10,000 of 16,000 becomes 1,280 of 2,048.
        let lowered = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: thinking(10_000), requestID: "th-1")
        #expect(lowered.status == 200)
        #expect(try sent("th-1").contains(#""max_tokens":2048,"thinking":{"type":"enabled","budget_tokens":1280}"#))
        #expect(try h.row("th-1")?.outputCapApplied == 2048)
        // A max_tokens the cap does not clamp, or interleaved thinking (its budget spans the turn
        // and may pass max_tokens), is sent as written.
        #expect(try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: thinking(1_500, maxTokens: 2_000),
                                 requestID: "th-2").status == 200)
        #expect(try sent("th-2").contains(#""max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":1500}"#))
        let interleaved = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: thinking(10_000),
                                           requestID: "th-3", headers: [("anthropic-beta", "interleaved-thinking-2025-05-14")])
        #expect(interleaved.status == 200)
        #expect(try sent("th-3").contains(#""max_tokens":2048,"thinking":{"type":"enabled","budget_tokens":10000}"#))

        // A cap of 1,024 leaves no room for the least budget (1,024, below max_tokens).
        let refused = try await h.post("/v1/messages", key: h.bobKey, dialect: "anthropic", json: thinking(2_000), requestID: "th-4")
        #expect(refused.status == 400)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(refused.body)) as? [String: Any])
        let error = try #require(body["error"] as? [String: Any])
        #expect(error["type"] as? String == "invalid_request_error")
        #expect((error["message"] as? String ?? "").contains("thinking.budget_tokens"))
        #expect(h.fake.exchange(requestID: "th-4") == nil)
        let row = try #require(try h.row("th-4"))
        #expect(row.outcome == .refusedCap && row.plan == "tight" && row.outputCapRequested == 16_000)
        // Interleaved thinking needs no room below max_tokens: not refused.
        let tightInterleaved = try await h.post("/v1/messages", key: h.bobKey, dialect: "anthropic", json: thinking(2_000),
                                                requestID: "th-6", headers: [("anthropic-beta", "interleaved-thinking-2025-05-14")])
        #expect(tightInterleaved.status == 200)
        #expect(try sent("th-6").contains(#""max_tokens":1024,"thinking":{"type":"enabled","budget_tokens":2000}"#))
        // A beta among several lines counts.
        let second = try await h.post("/v1/messages", key: h.bobKey, dialect: "anthropic", json: thinking(2_000), requestID: "th-8",
                                      headers: [("anthropic-beta", "files-api-2025-04-14"),
                                                ("anthropic-beta", "interleaved-thinking-2025-05-14")])
        #expect(second.status == 200)
        // Without thinking the same plan clamps as before.
        let plain = #"{"model":"claude-3-5-haiku-20241022","max_tokens":16000,"messages":[{"role":"user","content":"hi"}]}"#
        #expect(try await h.post("/v1/messages", key: h.bobKey, dialect: "anthropic", json: plain, requestID: "th-5").status == 200)

        // The interleaved beta as a provider's static header counts as the client's does.
        let beta = try ProxyHarness(plansYAML: "defaults: { plan: tight }\nplans: { tight: { max_output_tokens: 1024 } }",
                                    providerHeaders: ["anthropic-beta": "interleaved-thinking-2025-05-14"])
        defer { beta.shutdown() }
        #expect(try await beta.post("/v1/messages", key: beta.aliceKey, dialect: "anthropic", json: thinking(2_000),
                                    requestID: "th-7").status == 200)
    }

    @Test("an OpenAI-compatible server gets the cap in max_tokens, which they all read, on chat and legacy completions")
    func compatibleServerCap() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: clamped }
            plans: { clamped: { max_output_tokens: 100 }, open: {} }
            users: { bob: { plan: open } }
            """, providersForFake: { url in
            """
            providers:
              local: { dialect: openai, base_url: "\(url)/v1", api_key_env: E2E_PROVIDER_KEY, openai_compatible: true }
            models:
              - { match: "gpt-*", provider: local }
            """
        })
        defer { h.shutdown() }
        func sent(_ id: String) throws -> String {
            String(decoding: try #require(h.fake.exchange(requestID: id)).requestBody, as: UTF8.self)
        }
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(), requestID: "oc-1").status == 200)
        #expect(try sent("oc-1").hasPrefix(#"{"max_tokens":100,"model":"gpt-4o-mini""#))
        let asked = #"{"model":"gpt-4o-mini","max_completion_tokens":40,"messages":[{"role":"user","content":"hi"}]}"#
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: asked, requestID: "oc-2").status == 200)
        #expect(try sent("oc-2").hasPrefix(#"{"max_tokens":40,"model":"gpt-4o-mini","max_completion_tokens":40"#))
        #expect(try h.row("oc-2")?.outputCapApplied == 40)
        // Their legacy completions write until the model stops when max_tokens is absent, not 16.
        let completion = #"{"model":"gpt-quota","prompt":"hi"}"#
        #expect(try await h.post("/v1/completions", key: h.aliceKey, json: completion, requestID: "oc-3").status == 200)
        #expect(try sent("oc-3") == #"{"max_tokens":100,"model":"gpt-quota","prompt":"hi"}"#)
        #expect(try h.row("oc-3")?.outputCapApplied == 100)
        // Without a plan cap the reservation counts the client's max_completion_tokens: it goes
        // in max_tokens too. A client's max_tokens, or no limit at all, is sent as written.
        #expect(try await h.post("/v1/chat/completions", key: h.bobKey, json: asked, requestID: "oc-4").status == 200)
        #expect(try sent("oc-4").hasPrefix(#"{"max_tokens":40,"model":"gpt-4o-mini","max_completion_tokens":40"#))
        #expect(try await h.post("/v1/chat/completions", key: h.bobKey, json: Self.chat(), requestID: "oc-5").status == 200)
        #expect(try sent("oc-5") == Self.chat())
    }

    @Test("requests per minute: 429 with retry-after and x-ratelimit headers, in each dialect")
    func rateLimit() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: slow }
            plans: { slow: { requests_per_minute: 1 } }
            """)
        defer { h.shutdown() }
        // One a minute. On a loaded machine the next call may come a minute later and be
        // admitted; that is right only if a minute can have passed between the two admissions
        // (the second call's answer came at least 60 s after the first call was sent), and then
        // the call after it is the one that must be refused.
        var admittedSentAt = ContinuousClock.now
        let first = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(), requestID: "rl-1")
        #expect(first.status == 200)
        #expect(first.header("x-ratelimit-limit-requests") == "1")
        #expect(first.header("x-ratelimit-remaining-requests") == "0")
        var limited = first
        for attempt in 0..<3 {
            let sentAt = ContinuousClock.now
            limited = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(), requestID: "rl-3-\(attempt)")
            guard limited.status == 200 else { break }
            #expect(ContinuousClock.now - admittedSentAt >= .seconds(60), "admitted twice within a minute")
            admittedSentAt = sentAt
        }
        #expect(limited.status == 429)
        #expect(try errorObject(limited)["code"] as? String == "rate_limit_exceeded")
        #expect(try errorObject(limited)["type"] as? String == "requests")
        let retryAfter = try #require(limited.header("retry-after").flatMap(Int.init))
        #expect((1...60).contains(retryAfter))
        #expect(limited.header("retry-after-ms") != nil)
        #expect(limited.header("x-ratelimit-remaining-requests") == "0")
        #expect(try h.row(try #require(limited.header("x-request-id")))?.outcome == .refusedRate)
        let anthropic = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                         json: #"{"model":"claude-3-5-haiku-20241022","max_tokens":5,"messages":[]}"#,
                                         requestID: "rl-4")
        #expect(anthropic.status == 429)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(anthropic.body)) as? [String: Any])
        #expect((body["error"] as? [String: Any])?["type"] as? String == "rate_limit_error")
        // Bob has his own allowance.
        #expect(try await h.post("/v1/chat/completions", key: h.bobKey, json: Self.chat(), requestID: "rl-5").status == 200)
    }

    @Test("max_concurrent: a second call while one streams gets 429; the slot frees when it ends")
    func concurrency() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: one }
            plans: { one: { max_concurrent: 1 } }
            """, providerHeaders: ["x-fake-hold": "slow"])
        defer { h.shutdown() }
        async let slow = h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(), requestID: "cc-1")
        for _ in 0..<1_000 where h.server.callsInFlight == 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(h.server.callsInFlight == 1)
        let second = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(), requestID: "cc-2")
        #expect(second.status == 429)
        h.fake.release("slow")
        #expect(try await slow.status == 200)
        #expect(try h.row("cc-2")?.outcome == .refusedConcurrency)
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(), requestID: "cc-3").status == 200)
    }

    /// gpt-exact costs 1 µ$ per output token and nothing for input, and FakeLLM answers with
    /// exactly the 50 tokens the call asks for: each call's actual cost equals the worst case it
    /// reserves, so a settled call frees nothing and the number admitted does not depend on timing.
    static let exactCall = chat("gpt-exact", maxTokens: 50)
    static let exactCost = Money(picodollars: 50 * 1_000_000)

    @Test("500 concurrent calls against a budget that fits N worst cases: N admitted, spend within budget, nothing left reserved")
    func quotaHoldsUnderConcurrency() async throws {
        let n = 7
        let budget = Money(picodollars: Int64(n) * Self.exactCost.picodollars)
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: metered }
            plans: { metered: { budget: { daily_usd: "\(budget.formatted(decimals: 6))" } } }
            """, providerHeaders: ["x-fake-chunks": "50", "x-fake-first-byte-delay-ms": "200"])
        defer { h.shutdown() }
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<500 {
                group.addTask { try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.exactCall, requestID: "q-\(i)").status }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.filter { $0 == 200 }.count == n)
        #expect(statuses.filter { $0 == 429 }.count == 500 - n)
        let rows = try h.allRows()
        #expect(rows.count == 500)
        var spent = Money.Total()
        for row in rows { spent.add(row.cost) }
        #expect(spent.picodollars == Int128(budget.picodollars))
        #expect(rows.filter { $0.outcome == .refusedQuota }.count == 500 - n)
        #expect(h.server.openQuotaReservations == 0)
    }

    @Test("a call asking n answers reserves n times its output limit: a budget for 2 refuses n 3, admits n 2")
    func choicesMultiplyTheReservation() async throws {
        let budget = Money(picodollars: 2 * Self.exactCost.picodollars)
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: metered }
            plans: { metered: { budget: { daily_usd: "\(budget.formatted(decimals: 6))" } } }
            """, providerHeaders: ["x-fake-chunks": "50"])
        defer { h.shutdown() }
        func answers(_ n: Int) -> String {
            Self.exactCall.replacingOccurrences(of: #""max_tokens":50"#, with: #""max_tokens":50,"n":\#(n)"#)
        }
        let three = try await h.post("/v1/chat/completions", key: h.aliceKey, json: answers(3), requestID: "n-3")
        #expect(three.status == 429)
        #expect(try #require(try h.row("n-3")).outcome == .refusedQuota)
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: answers(2), requestID: "n-2").status == 200)
    }

    @Test("a team budget is shared by its members")
    func teamBudget() async throws {
        let teamBudget = Money(picodollars: 2 * Self.exactCost.picodollars)
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: open }
            plans: { open: {} }
            teams: { research: { budget: { monthly_usd: "\(teamBudget.formatted(decimals: 6))" } } }
            """, providerHeaders: ["x-fake-chunks": "50"])
        defer { h.shutdown() }
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.exactCall, requestID: "t-1").status == 200)
        #expect(try await h.post("/v1/chat/completions", key: h.carolKey, json: Self.exactCall, requestID: "t-2").status == 200)
        let third = try await h.post("/v1/chat/completions", key: h.carolKey, json: Self.exactCall, requestID: "t-3")
        #expect(third.status == 429)
        #expect((try errorObject(third)["message"] as? String)?.contains("team research") == true)
        // Bob is in no team: unaffected.
        #expect(try await h.post("/v1/chat/completions", key: h.bobKey, json: Self.exactCall, requestID: "t-4").status == 200)
    }

    @Test("a team or org budget a reload adds counts what was spent earlier in its period")
    func budgetAddedByReloadCountsEarlierSpend() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: open }
            plans: { open: {} }
            """, providerHeaders: ["x-fake-chunks": "50"])
        defer { h.shutdown() }
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.exactCall, requestID: "ra-1").status == 200)
        #expect(try await h.post("/v1/chat/completions", key: h.carolKey, json: Self.exactCall, requestID: "ra-2").status == 200)
        let spent = try h.allRows().reduce(Int64(0)) { $0 + $1.cost.picodollars }
        #expect(spent == 2 * Self.exactCost.picodollars)

        // Room for one more call, counting the two already made.
        let room = Money(picodollars: 3 * Self.exactCost.picodollars).formatted(decimals: 6)
        try h.writePolicy("plans.yaml", """
            defaults: { plan: open }
            plans: { open: {} }
            teams: { research: { budget: { monthly_usd: "\(room)" } } }
            """)
        #expect(h.server.reloadPolicy())
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.exactCall, requestID: "ra-3").status == 200)
        let fourth = try await h.post("/v1/chat/completions", key: h.carolKey, json: Self.exactCall, requestID: "ra-4")
        #expect(fourth.status == 429)
        #expect(((try? errorObject(fourth))?["message"] as? String)?.contains("team research") == true)

        // The org's too: bob (no team) has spent nothing, but the org has spent three calls.
        try h.writePolicy("plans.yaml", """
            defaults: { plan: open }
            plans: { open: {} }
            org: { budget: { monthly_usd: "\(room)" } }
            """)
        #expect(h.server.reloadPolicy())
        let bob = try await h.post("/v1/chat/completions", key: h.bobKey, json: Self.exactCall, requestID: "ra-5")
        #expect(bob.status == 429)
        let message = (try? errorObject(bob))?["message"] as? String ?? ""
        #expect(message.contains("org's monthly budget of $0.00015 is exhausted: $0.00015 spent"), "\(message)")
    }

    @Test("a time_zone a reload changes leaves budgets counting in the start-up zone until a restart")
    func timeZoneChangeKeepsBudgets() async throws {
        let room = Money(picodollars: 2 * Self.exactCost.picodollars).formatted(decimals: 6)
        let plans = """
            defaults: { plan: metered }
            plans: { metered: { budget: { monthly_usd: "\(room)" } } }
            """
        let capture = LogCapture()
        let h = try ProxyHarness(plansYAML: plans, providerHeaders: ["x-fake-chunks": "50"], logger: capture.logger)
        defer { h.shutdown() }
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.exactCall, requestID: "tz-1").status == 200)
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.exactCall, requestID: "tz-2").status == 200)
        try h.writePolicy("plans.yaml", "time_zone: Pacific/Kiritimati\n" + plans)
        #expect(h.server.reloadPolicy())
        // In the new zone's month nothing was counted yet; the budget still is.
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.exactCall, requestID: "tz-3").status == 429)
        #expect(capture.text.contains("time_zone changed: budgets keep their periods until the next restart"))
        // Back to the start-up zone, budgets and reports agree again: said so, not warned.
        try h.writePolicy("plans.yaml", plans)
        #expect(h.server.reloadPolicy())
        #expect(capture.text.contains("time_zone back to the zone budgets count in"))
        #expect(capture.text.components(separatedBy: "time_zone changed").count == 2)
    }

    @Test("an exhausted quota: 429 insufficient_quota, x-should-retry false, the budget named; no rate slot taken")
    func quotaExhaustedShape() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: broke }
            plans: { broke: { requests_per_minute: 2, budget: { monthly_usd: "0" } } }
            """)
        defer { h.shutdown() }
        // Refused for its budget, a call takes nothing from the rate limit: the client keeps being
        // told the truth (not a retryable rate limit after two calls).
        for index in 0..<4 {
            let refused = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(), requestID: "qx-r\(index)")
            #expect(try errorObject(refused)["code"] as? String == "insufficient_quota")
        }
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(), requestID: "qx-1")
        #expect(r.status == 429)
        #expect(r.header("x-should-retry") == "false")
        #expect(try errorObject(r)["code"] as? String == "insufficient_quota")
        let message = try errorObject(r)["message"] as? String ?? ""
        #expect(message.contains("user alice") && message.contains("monthly") && message.contains("resets"))
        #expect(try h.row("qx-1")?.outcome == .refusedQuota)
        #expect(h.fake.requestCount == 0)
    }

    @Test("the org's spend-rate breaker: 429 once the last hour's spend passes the rate, its limit as configured, recorded")
    func spendRateBreaker() async throws {
        let h = try ProxyHarness(plansYAML: """
            org: { spend_rate: { usd_per_hour: "0.000001" } }
            """)
        defer { h.shutdown() }
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(), requestID: "br-1").status == 200)
        let spent = try #require(try h.row("br-1")).cost
        #expect(spent > Money(picodollars: 1_000_000))
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat(), requestID: "br-2")
        #expect(r.status == 429)
        #expect(try errorObject(r)["code"] as? String == "rate_limit_exceeded")
        let message = try errorObject(r)["message"] as? String ?? ""
        #expect(message.hasPrefix("The organisation's spend rate is over its limit of $0.000001 per hour; calls resume as it falls, in about "))
        // The call's spend ages out of the hour's window: minutes away, past what the SDKs wait
        // for, so they are told not to retry on their own.
        let wait = Int(r.header("retry-after") ?? "") ?? 0
        #expect(wait > 60 && r.header("x-should-retry") == "false")
        #expect(try h.row("br-2")?.outcome == .refusedBreaker)
        #expect(h.fake.requestCount == 1)
    }

    /// Anthropic bills a prompt written to its cache above the input price (twice it for the
    /// 1-hour cache): a call that asks for caching reserves its prompt at that price.
    @Test("a call asking for prompt caching reserves its prompt at the dearest cache-write price")
    func cachingCallsReserveTheWritePrice() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: tight }
            plans: { tight: { budget: { daily_usd: "0.012" } } }
            """)
        defer { h.shutdown() }
        let text = String(repeating: "x", count: 30_000)
        let plain = #"{"model":"claude-3-5-haiku-20241022","max_tokens":10,"messages":[{"role":"user","content":"\#(text)"}]}"#
        let cached = #"{"model":"claude-3-5-haiku-20241022","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"\#(text)","cache_control":{"type":"ephemeral","ttl":"1h"}}]}]}"#
        let automatic = #"{"model":"claude-3-5-haiku-20241022","max_tokens":10,"cache_control":{"type":"ephemeral"},"messages":[{"role":"user","content":"\#(text)"}]}"#
        // About 10,000 prompt tokens: $0.008 at the input price fits, $0.016 at the 1-hour write does not.
        for (id, body) in [("cc-1", cached), ("cc-2", automatic)] {
            let r = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: body, requestID: id)
            #expect(r.status == 429, "\(id)")
            #expect(try errorObject(r)["type"] as? String == "billing_error")
        }
        #expect(h.fake.requestCount == 0)
        let r = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic", json: plain, requestID: "cc-3")
        #expect(r.status == 200)
    }

    @Test("a restart continues the budget where the ledger left it")
    func restartKeepsSpend() async throws {
        let plans = """
            defaults: { plan: metered }
            plans: { metered: { budget: { monthly_usd: "1" } } }
            """
        let h = try ProxyHarness(plansYAML: plans)
        defer { h.shutdown() }
        let first = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat("gpt-quota"), requestID: "rs-1")
        let second = try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat("gpt-quota"), requestID: "rs-2")
        #expect(first.header("x-tokenctl-budget-remaining-usd") == "1.000000")
        #expect(second.header("x-tokenctl-budget-remaining-usd") != "1.000000")
        try h.server.shutdown()

        // A new process on the same ledger: the third call must see what the second one saw, less its own cost.
        let policy = try PolicyLoader.load(directory: h.policyDirectory.path, environment: h.environment)
        var logger = Logger(label: "restart")
        logger.logLevel = .warning
        let again = try GatewayServer.start(configuration: .init(port: 0, eventLoopThreads: 1), policy: policy,
                                            databasePath: h.dbPath, logger: logger)
        defer { try? again.shutdown() }
        let third = try await TestHTTPClient.postJSON(port: again.port, path: "/v1/chat/completions", key: h.aliceKey,
                                                      json: Self.chat("gpt-quota"), headers: [("x-request-id", "rs-3")])
        #expect(third.status == 200)
        // The header says what was left when the call started: the budget less the first two calls.
        let spentBefore = try h.allRows().filter { $0.requestId != "rs-3" }.reduce(Int64(0)) { $0 + $1.cost.picodollars }
        #expect(spentBefore > 0)
        let expectedLeft = Money(picodollars: 1_000_000_000_000 - spentBefore).formatted(decimals: 6)
        #expect(third.header("x-tokenctl-budget-remaining-usd") == expectedLeft)
    }

    @Test("a service key may name its end user; other keys cannot")
    func endUserAttribution() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: open }
            plans: { open: {} }
            keys: { attribute_end_users: ["svc-*"] }
            """)
        defer { h.shutdown() }
        let named = #"{"model":"gpt-4o-mini","user":"u-42","messages":[{"role":"user","content":"hi"}]}"#
        _ = try await h.post("/v1/chat/completions", key: h.serviceKey, json: named, requestID: "eu-1")
        _ = try await h.post("/v1/chat/completions", key: h.serviceKey, json: Self.chat(), requestID: "eu-2",
                             headers: [("x-tokenctl-user", "u-7")])
        _ = try await h.post("/v1/chat/completions", key: h.aliceKey, json: named, requestID: "eu-3")
        #expect(try h.row("eu-1")?.user == "u-42")
        #expect(try h.row("eu-1")?.team == "support")
        #expect(try h.row("eu-2")?.user == "u-7")
        #expect(try h.row("eu-3")?.user == "alice")
        // A report's own labels name nobody: the key's user pays.
        _ = try await h.post("/v1/chat/completions", key: h.serviceKey, json: Self.chat(), requestID: "eu-4",
                             headers: [("x-tokenctl-user", "(none)")])
        #expect(try h.row("eu-4")?.user == "svc-chat")
        // Nor do names no key could be made for: one passing for "(none)", or carrying a terminal
        // escape and a forged report line.
        for (i, name) in ["(none) ", " u-42", "evil\u{1b}[2J\nfake-row   $999.00", "x\u{0}y", "alice\u{200B}"].enumerated() {
            let body = #"{"model":"gpt-4o-mini","user":"\#(JSONString.literal(name).dropFirst().dropLast())","messages":[]}"#
            _ = try await h.post("/v1/chat/completions", key: h.serviceKey, json: body, requestID: "eu-bad-\(i)")
            #expect(try h.row("eu-bad-\(i)")?.user == "svc-chat", "\(name.debugDescription)")
        }
    }

    @Test("a service key's end user pays in refusals and replays as in its calls; another end user on the same key conflicts")
    func endUserInRefusalsAndReplays() async throws {
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: open }
            plans: { open: {}, small: { models: ["gpt-4o-mini"] } }
            users: { u-9: { plan: small } }
            keys: { attribute_end_users: ["svc-*"] }
            """)
        defer { h.shutdown() }
        let asU9: [(String, String)] = [("x-tokenctl-user", "u-9")]
        let refused = try await h.post("/v1/chat/completions", key: h.serviceKey, json: Self.chat("o4-mini"),
                                       requestID: "eur-1", headers: asU9)
        #expect(refused.status == 403)
        let refusedRow = try #require(try h.row("eur-1"))
        #expect(refusedRow.user == "u-9" && refusedRow.team == "support" && refusedRow.plan == "small")

        let first = try await h.post("/v1/chat/completions", key: h.serviceKey, json: Self.chat(), requestID: "eur-2",
                                     headers: asU9 + [("idempotency-key", "k-1")])
        let again = try await h.post("/v1/chat/completions", key: h.serviceKey, json: Self.chat(), requestID: "eur-3",
                                     headers: asU9 + [("idempotency-key", "k-1")])
        #expect(first.status == 200 && again.status == 200)
        let replayed = try #require(try h.row("eur-3"))
        #expect(replayed.outcome == .replayed && replayed.user == "u-9" && replayed.plan == "small")

        let other = try await h.post("/v1/chat/completions", key: h.serviceKey, json: Self.chat(), requestID: "eur-4",
                                     headers: [("x-tokenctl-user", "u-10"), ("idempotency-key", "k-1")])
        #expect(other.status == 409)
        let conflict = try #require(try h.row("eur-4"))
        #expect(conflict.outcome == .refusedBadRequest && conflict.user == "u-10" && conflict.plan == "open")
    }
}
