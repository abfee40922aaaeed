import Foundation
import Metering
import Testing
@testable import Policy

/// What `PlanBook.effectivePlan` resolves: plan, user overrides, then user, team and org budgets.
@Suite struct PlansResolutionTests {
    static let plans = """
        time_zone: Europe/Berlin
        defaults: { plan: free }
        plans:
          free:
            requests_per_minute: 20
            tokens_per_minute: 40000
            max_concurrent: 2
            max_output_tokens: 512
            budget: { daily_usd: "0.50", weekly_usd: "2", monthly_usd: "5.00" }
            tokens: { daily: 200000 }
            models: ["gpt-4o-mini", "claude-3-5-haiku-*"]
          pro:
            requests_per_minute: 600
            max_output_tokens: 4096
            on_output_over_cap: reject
            budget: { monthly_usd: "300" }
        users:
          alice: { plan: pro }
          bob:
            plan: free
            budget: { monthly_usd: "20", weekly_usd: unlimited }
            tokens: { monthly: 1000000 }
            requests_per_minute: unlimited
            models: ["gpt-*"]
          carol: { max_concurrent: 5 }
        teams:
          research: { budget: { monthly_usd: "500" }, tokens: { monthly: 50000000 } }
          support: {}
        org:
          budget: { monthly_usd: "5000" }
          tokens: { weekly: 900000000 }
          spend_rate: { usd_per_hour: "50" }
        keys:
          attribute_end_users: ["svc-*", "batch"]
        """

    static func book() throws -> PlanBook {
        try PlansFileTests.fixture(plans).load().plans
    }

    static func usd(_ text: String) -> Money { Money(dollars: text)! }

    @Test func unlistedUsersGetTheDefaultPlanWithTheirOwnBudgets() throws {
        let plan = try Self.book().effectivePlan(user: "zed", team: nil)
        #expect(plan.planName == "free")
        #expect(plan.models == [ModelPattern("gpt-4o-mini"), ModelPattern("claude-3-5-haiku-*")])
        #expect(plan.allows(model: "claude-3-5-haiku-20241022") && !plan.allows(model: "gpt-4o"))
        #expect(plan.rate == RateLimits(requestsPerMinute: 20, tokensPerMinute: 40000, maxConcurrent: 2))
        #expect(plan.outputCap == OutputCap(maxTokens: 512, onOver: .clamp))
        #expect(plan.budgets == [
            BudgetLimit(scope: .user("zed"), period: .day, usd: Self.usd("0.5"), tokens: 200_000),
            BudgetLimit(scope: .user("zed"), period: .week, usd: Self.usd("2")),
            BudgetLimit(scope: .user("zed"), period: .month, usd: Self.usd("5")),
            BudgetLimit(scope: .org, period: .week, tokens: 900_000_000),
            BudgetLimit(scope: .org, period: .month, usd: Self.usd("5000")),
        ])
    }

    @Test func userOverridesReplaceFieldByFieldAndBudgetsPeriodByPeriod() throws {
        let plan = try Self.book().effectivePlan(user: "bob", team: nil)
        #expect(plan.planName == "free")
        #expect(plan.models == [ModelPattern("gpt-*")])
        // `unlimited` lifts the plan's limit; untouched fields keep the plan's values.
        #expect(plan.rate == RateLimits(requestsPerMinute: nil, tokensPerMinute: 40000, maxConcurrent: 2))
        #expect(plan.outputCap == OutputCap(maxTokens: 512, onOver: .clamp))
        // monthly_usd replaced, daily kept, weekly lifted, monthly tokens added.
        #expect(plan.budgets.filter { $0.scope == .user("bob") } == [
            BudgetLimit(scope: .user("bob"), period: .day, usd: Self.usd("0.50"), tokens: 200_000),
            BudgetLimit(scope: .user("bob"), period: .month, usd: Self.usd("20"), tokens: 1_000_000),
        ])
        // A listed user without `plan` is on the default plan, with their override.
        let carol = try Self.book().effectivePlan(user: "carol", team: nil)
        #expect(carol.planName == "free" && carol.rate.maxConcurrent == 5 && carol.rate.requestsPerMinute == 20)
        let alice = try Self.book().effectivePlan(user: "alice", team: nil)
        #expect(alice.planName == "pro" && alice.models == nil && alice.allows(model: "o3"))
        #expect(alice.outputCap == OutputCap(maxTokens: 4096, onOver: .reject))
        #expect(alice.rate == RateLimits(requestsPerMinute: 600))
    }

    @Test func teamAndOrgBudgetsFollowTheUsersOwn() throws {
        let book = try Self.book()
        let plan = book.effectivePlan(user: "alice", team: "research")
        #expect(plan.budgets == [
            BudgetLimit(scope: .user("alice"), period: .month, usd: Self.usd("300")),
            BudgetLimit(scope: .team("research"), period: .month, usd: Self.usd("500"), tokens: 50_000_000),
            BudgetLimit(scope: .org, period: .week, tokens: 900_000_000),
            BudgetLimit(scope: .org, period: .month, usd: Self.usd("5000")),
        ])
        // A team without budgets, or one plans.yaml does not list, adds nothing.
        #expect(book.effectivePlan(user: "alice", team: "support").budgets.count == 3)
        #expect(book.effectivePlan(user: "alice", team: "sales").budgets.count == 3)
        #expect(book.budgets(ofTeam: "research").count == 1 && book.budgets(ofTeam: "sales").isEmpty)
        #expect(book.orgBudgets.map(\.period) == [.week, .month])
        #expect(book.orgSpendRatePerHour == Self.usd("50"))
    }

    @Test func timeZoneKeysAndPlanNames() throws {
        let book = try Self.book()
        #expect(book.timeZone.identifier == "Europe/Berlin")
        #expect(book.planNames == ["free", "pro"])
        #expect(book.defaultPlan == "free")
        #expect(book.mayAttributeEndUsers(keyUser: "svc-billing"))
        #expect(book.mayAttributeEndUsers(keyUser: "batch"))
        #expect(!book.mayAttributeEndUsers(keyUser: "batch-2") && !book.mayAttributeEndUsers(keyUser: "alice"))
        let utc = try PlansFileTests.fixture("defaults: { plan: p }\nplans: { p: {} }\n").load().plans
        #expect(utc.timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: 1_750_000_000)) == 0)
        #expect(try PlansFileTests.fixture("time_zone: America/New_York\n").load().plans.timeZone.identifier
                == "America/New_York")
    }

    @Test func withoutPlansEveryoneIsUnlimited() throws {
        let absent = try PolicyFixture.with().load().plans
        #expect(absent == .unlimited)
        #expect(absent.planNames == ["unlimited"])
        #expect(absent.effectivePlan(user: "anyone", team: "research") == EffectivePlan(planName: "unlimited"))
        #expect(absent.orgSpendRatePerHour == nil && !absent.mayAttributeEndUsers(keyUser: "svc-x"))
        #expect(absent.timeZone.secondsFromGMT(for: Date()) == 0)
        #expect(try PlansFileTests.fixture("# nothing yet\n").load().plans == .unlimited)
        // Org budgets alone: still the unlimited plan, with the org's budget on top.
        let orgOnly = try PlansFileTests.fixture("""
            org: { budget: { monthly_usd: "100" } }
            users: { bob: { plan: unlimited, max_concurrent: 1 } }
            """).load().plans
        #expect(orgOnly.effectivePlan(user: "alice", team: nil) == EffectivePlan(
            planName: "unlimited", budgets: [BudgetLimit(scope: .org, period: .month, usd: Self.usd("100"))]))
        #expect(orgOnly.effectivePlan(user: "bob", team: nil).rate.maxConcurrent == 1)
    }

    @Test func versionCoversPlans() throws {
        let without = try PolicyFixture.with().load().version
        let with = try PlansFileTests.fixture("defaults: { plan: p }\nplans: { p: {} }\n",
                                              providers: PolicyFixture.providers, prices: PolicyFixture.prices)
            .load().version
        let changed = try PlansFileTests.fixture("defaults: { plan: q }\nplans: { q: {} }\n",
                                                 providers: PolicyFixture.providers, prices: PolicyFixture.prices)
            .load().version
        #expect(Set([without, with, changed]).count == 3)
    }
}
