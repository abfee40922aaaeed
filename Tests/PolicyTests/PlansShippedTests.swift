import Foundation
import Testing
@testable import Policy

/// The shipped policies/plans.yaml loads cleanly against the shipped providers and prices, and
/// keeps the quick start working (everyone defaults to a plan with every routed model).
@Suite struct PlansShippedTests {
    static func shipped() throws -> PolicySet {
        try PolicyLoader.load(directory: ShippedPoliciesTests.directory, environment: ShippedPoliciesTests.environment)
    }

    @Test func loadsWithNoProblemsOrWarnings() throws {
        let set = try Self.shipped()
        #expect(set.warnings.map(\.description) == [])
        #expect(set.plans.planNames == ["free", "pro", "unlimited"])
        #expect(set.plans.timeZone.secondsFromGMT(for: Date()) == 0)
    }

    @Test func defaultPlanAllowsEveryRoutedModelWithFiniteLimits() throws {
        let plan = try Self.shipped().plans.effectivePlan(user: "someone", team: nil)
        #expect(plan.planName == "pro" && plan.models == nil)
        #expect(plan.rate.requestsPerMinute != nil && plan.rate.maxConcurrent != nil)
        #expect(plan.budgets.contains { $0.scope == .user("someone") && $0.period == .month && $0.usd != nil })
    }

    @Test func freePlanCoversTheSmallModelsOnly() throws {
        let set = try Self.shipped()
        let free = set.plans.plans["free"]!
        for model in ["gpt-4o-mini", "gpt-4o-mini-2024-07-18", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5-mini",
                      "gpt-5-nano", "claude-haiku-4-5", "claude-haiku-4-5-20251001", "text-embedding-3-small"] {
            #expect(free.allows(model: model), "\(model)")
            #expect(set.provider(forModel: model) != nil, "\(model)")
        }
        for model in ["gpt-4o", "gpt-5", "o3", "claude-sonnet-4-5", "claude-opus-4-1", "text-embedding-3-large"] {
            #expect(!free.allows(model: model), "\(model)")
        }
        #expect(free.outputCap != nil && free.rate.maxConcurrent == 2)
        #expect(set.plans.plans["unlimited"] == EffectivePlan(planName: "unlimited"))
    }

    /// The "Full example" in the file's header is valid as written, so admins can copy it.
    @Test func documentedFullExampleLoads() throws {
        let text = try String(contentsOfFile: ShippedPoliciesTests.directory + "/plans.yaml", encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        let start = try #require(lines.firstIndex(of: "# Full example:")) + 2
        let example = lines[start...].prefix { $0.hasPrefix("#   ") }.map { String($0.dropFirst(4)) }
        #expect(example.count > 20)
        var files: [String: String] = ["plans.yaml": example.joined(separator: "\n")]
        for name in ["providers.yaml", "prices.yaml"] {
            files[name] = try String(contentsOfFile: ShippedPoliciesTests.directory + "/" + name, encoding: .utf8)
        }
        let book = try PolicyFixture(files).load(ShippedPoliciesTests.environment).plans
        #expect(book.timeZone.identifier == "Europe/Berlin" && book.defaultPlan == "free")
        #expect(book.effectivePlan(user: "bob", team: "research").budgets.count == 5)
        #expect(book.effectivePlan(user: "carol", team: nil).rate.maxConcurrent == nil)
        #expect(book.mayAttributeEndUsers(keyUser: "svc-etl"))
    }
}
