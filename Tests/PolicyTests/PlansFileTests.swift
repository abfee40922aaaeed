import Metering
import Testing
@testable import Policy

/// Validation of plans.yaml: every mistake reported as file:line: field: message.
@Suite struct PlansFileTests {
    static let providers = """
        providers:
          openai: { dialect: openai, base_url: "https://api.openai.com/v1" }
          anthropic: { dialect: anthropic, base_url: "https://api.anthropic.com" }
        models:
          - { match: "gpt-*", provider: openai }
          - { match: "o3*", provider: openai }
          - { match: "claude-*", provider: anthropic }
        """
    static let prices = """
        - { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", output: "0.60" }
        - { model: "claude-3-5-haiku-*", effective_from: "2024-11-04", input: "0.8", output: "4" }
        """

    /// A directory with the test providers and prices, and `plans` as plans.yaml.
    static func fixture(_ plans: String, providers: String = providers, prices: String = prices,
                        gateway: String? = nil) throws -> PolicyFixture {
        var files = ["providers.yaml": providers, "prices.yaml": prices, "plans.yaml": plans]
        if let gateway { files["gateway.yaml"] = gateway }
        return try PolicyFixture(files)
    }

    @Test func everyMistakeIsReportedWithItsLineAndField() throws {
        let problems = try Self.fixture("""
            time_zone: Mars/Olympus
            defaults: { plan: gold }
            plans:
              free:
                requests_per_minute: -1
                tokens_per_minute: 1.5
                max_concurrent: "2"
                max_output_tokens: 0
                on_output_over_cap: truncate
                budget: { daily_usd: 0.5, weekly_usd: "-2", monthly_usd: "5.1234567", yearly_usd: "9" }
                tokens: { daily: lots }
                models: ["gpt-4o-mini", "llama-3", "gpt-4.1", "claude-*", ""]
                rpm: 3
              "bad name":
                requests_per_minute: 0
            users:
              bob: { plan: platinum, budget: { monthly_usd: "$20" } }
            teams:
              research: { budget: { monthly_usd: "500" }, members: [a] }
            org:
              spend_rate: { usd_per_minute: "1" }
            keys:
              attribute_end_users: ["svc-*", "has space"]
            extra: 1
            """).problems()
        let refused = "every call would be refused (add a price, or set unpriced_models: allow in gateway.yaml)"
        #expect(problems == [
            "plans.yaml:1: time_zone: unknown time zone 'Mars/Olympus' (expected an IANA name such as UTC or Europe/Berlin)",
            "plans.yaml:2: defaults.plan: unknown plan 'gold' (expected bad name or free)",
            "plans.yaml:5: plans.free.requests_per_minute: negative limit -1 (0 allows nothing; write unlimited for no limit)",
            "plans.yaml:6: plans.free.tokens_per_minute: expected a whole number, found number 1.5",
            "plans.yaml:7: plans.free.max_concurrent: expected a whole number or unlimited, found string '2'",
            "plans.yaml:8: plans.free.max_output_tokens: 0 is out of range (1...1000000000000000)",
            "plans.yaml:9: plans.free.on_output_over_cap: unknown value 'truncate' (expected clamp or reject)",
            "plans.yaml:10: plans.free.budget.yearly_usd: unknown key 'yearly_usd' (expected daily_usd, weekly_usd or monthly_usd)",
            "plans.yaml:10: plans.free.budget.daily_usd: write the amount as a quoted string, \"0.5\": bare YAML numbers are floats and may not be exact",
            "plans.yaml:10: plans.free.budget.weekly_usd: negative amount '-2'",
            "plans.yaml:10: plans.free.budget.monthly_usd: '5.1234567' has more than six decimals",
            "plans.yaml:11: plans.free.tokens.daily: expected a whole number or unlimited, found string 'lots'",
            "plans.yaml:12: plans.free.models[1]: model 'llama-3' is not routed (no route in providers.yaml serves it)",
            "plans.yaml:12: plans.free.models[2]: no price for model 'gpt-4.1' in prices.yaml; \(refused)",
            "plans.yaml:12: plans.free.models[4]: empty model name",
            "plans.yaml:13: plans.free.rpm: unknown key 'rpm' (expected requests_per_minute, tokens_per_minute, "
                + "max_concurrent, max_output_tokens, on_output_over_cap, budget, tokens or models)",
            "plans.yaml:14: plans.bad name: plan names may use only letters, digits, '-', '_' and '.'",
            "plans.yaml:17: users.bob.plan: unknown plan 'platinum' (expected bad name or free)",
            "plans.yaml:17: users.bob.budget.monthly_usd: '$20' is not a decimal number of dollars, e.g. \"20.00\"",
            "plans.yaml:19: teams.research.members: unknown key 'members' (expected budget or tokens)",
            "plans.yaml:21: org.spend_rate.usd_per_minute: unknown key 'usd_per_minute' (expected usd_per_hour)",
            "plans.yaml:21: org.spend_rate.usd_per_hour: missing required field",
            "plans.yaml:23: keys.attribute_end_users[1]: 'has space' is not a user name or glob (no whitespace; `*` matches any text)",
            "plans.yaml:24: extra: unknown key 'extra' (expected time_zone, defaults, plans, users, teams, org or keys)",
        ])
    }

    @Test func plansNeedDefaultsAndAtLeastOnePlan() throws {
        #expect(try Self.fixture("""
            # plans without defaults
            plans:
              pro: { requests_per_minute: 60 }
            """).problems() == [
            "plans.yaml:2: defaults: missing: with plans defined, defaults.plan must name the plan of users not listed under users",
        ])
        // An empty plans: is reported once; the defaults and users naming plans are not piled on.
        #expect(try Self.fixture("""
            defaults: { plan: pro }
            plans: {}
            users: { alice: { plan: pro } }
            """).problems() == [
            "plans.yaml:2: plans: no plans defined (define at least one, or remove plans: to leave every user unlimited)",
        ])
        #expect(try Self.fixture("defaults: {}\nplans: { pro: {} }\n").problems() == [
            "plans.yaml:1: defaults.plan: missing required field",
        ])
    }

    @Test func wrongShapesAreProblems() throws {
        #expect(try Self.fixture("""
            defaults: { plan: pro }
            plans: [pro]
            """).problems() == [
            "plans.yaml:2: plans: expected a mapping, found a list",
        ])
        #expect(try Self.fixture("""
            defaults: pro
            plans:
              pro:
                models: gpt-4o-mini
                budget: "5"
            users:
              alice:
            teams: [research]
            org: { tokens: { monthly: 1.0e6 } }
            keys: { attribute_end_users: svc-* }
            """).problems() == [
            "plans.yaml:1: defaults: expected a mapping, found string 'pro'",
            "plans.yaml:4: plans.pro.models: expected a list, found string 'gpt-4o-mini'",
            "plans.yaml:5: plans.pro.budget: expected a mapping, found string '5'",
            "plans.yaml:7: users.alice: expected a mapping, found nothing",
            "plans.yaml:8: teams: expected a mapping, found a list",
            "plans.yaml:9: org.tokens.monthly: expected a whole number, found number 1.0e6",
            "plans.yaml:10: keys.attribute_end_users: expected a list, found string 'svc-*'",
        ])
        #expect(try Self.fixture("plans: {\n").problems().first?.hasPrefix("plans.yaml:") == true)
        #expect(try Self.fixture("- free\n").problems() == ["plans.yaml:1: expected a mapping, found a list"])
    }

    @Test func globModelsNeedARouteAndSomePrice() throws {
        let problems = try Self.fixture("""
            defaults: { plan: p }
            plans:
              p: { models: ["o3*", "gpt-4o-mini*", "claude-3-5-haiku-*", "mistral-*"] }
            """).problems()
        #expect(problems == [
            "plans.yaml:3: plans.p.models[0]: no price in prices.yaml matches any model of 'o3*'; every call would be "
                + "refused (add a price, or set unpriced_models: allow in gateway.yaml)",
            "plans.yaml:3: plans.p.models[3]: model 'mistral-*' is not routed (no route in providers.yaml serves it)",
        ])
    }

    @Test func unpricedModelsAreFineWhenAllowedButUnroutedNeverAre() throws {
        let problems = try Self.fixture("""
            defaults: { plan: p }
            plans:
              p: { models: ["gpt-4.1", "o3*", "llama-3"] }
            """, gateway: "unpriced_models: allow\n").problems()
        #expect(problems == [
            "plans.yaml:3: plans.p.models[2]: model 'llama-3' is not routed (no route in providers.yaml serves it)",
        ])
    }

    @Test func modelsAreNotCheckedAgainstABrokenProvidersFile() throws {
        let brokenProviders = """
            providers:
              openai: { dialect: opneai, base_url: "https://api.openai.com/v1" }
            models:
              - { match: "gpt-*", provider: openai }
            """
        let problems = try Self.fixture("""
            defaults: { plan: p }
            plans:
              p: { models: ["llama-3"] }
            """, providers: brokenProviders).problems()
        #expect(problems == [
            "providers.yaml:2: providers.openai.dialect: unknown dialect 'opneai' (expected openai or anthropic)",
        ])
    }

    @Test func overCapActionWithoutACapIsAWarning() throws {
        let set = try Self.fixture("""
            defaults: { plan: p }
            plans:
              p: { on_output_over_cap: reject }
              q: { max_output_tokens: 100, on_output_over_cap: reject }
            users:
              bob: { plan: q, max_output_tokens: unlimited }
            """).load()
        #expect(set.warnings.filter { $0.file == "plans.yaml" }.map(\.description) == [
            "plans.yaml:3: plans.p.on_output_over_cap: has no effect without max_output_tokens",
        ])
    }

    /// A restart loads such files (a reload from limits refuses them): start-up and `policy check` say so.
    @Test("a plans.yaml that limits nothing (empty, a comment, only time_zone) is warned about; one with a limit, or naming the unlimited plan, is not")
    func plansThatLimitNothingAreWarned() throws {
        for text in ["", "# nothing yet\n", "time_zone: UTC\n"] {
            #expect(try Self.fixture(text).load().warnings.filter { $0.file == "plans.yaml" }.map(\.description) == [
                "plans.yaml: names no plan, user, team or org limit: every caller is unlimited (no rate limit, output cap, concurrency limit or budget)",
            ], "\(text)")
        }
        // A file that limits, or says it means no limits, is not warned about.
        for text in ["org: { budget: { monthly_usd: \"100\" } }\n", "defaults: { plan: unlimited }\n"] {
            #expect(try Self.fixture(text).load().warnings.filter { $0.file == "plans.yaml" }.isEmpty, "\(text)")
        }
    }

    @Test func limitsAcceptZeroUnlimitedAndLargeCounts() throws {
        let set = try Self.fixture("""
            defaults: { plan: p }
            plans:
              p:
                requests_per_minute: 0
                tokens_per_minute: unlimited
                max_concurrent: 0
                budget: { daily_usd: "0", monthly_usd: "9000000.000001" }
                tokens: { monthly: 1_000_000_000_000 }
            """).load()
        let plan = set.plans.effectivePlan(user: "x", team: nil)
        #expect(plan.rate == RateLimits(requestsPerMinute: 0, tokensPerMinute: nil, maxConcurrent: 0))
        #expect(plan.budgets.map(\.usd) == [Money(dollars: "0"), Money(dollars: "9000000.000001")])
        #expect(plan.budgets.map(\.tokens) == [nil, 1_000_000_000_000])
        #expect(try Self.fixture("""
            defaults: { plan: p }
            plans: { p: { budget: { monthly_usd: "10000000" } } }
            """).problems() == ["plans.yaml:2: plans.p.budget.monthly_usd: '10000000' is too large"])
    }
}
