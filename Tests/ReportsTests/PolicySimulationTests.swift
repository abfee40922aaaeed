import Foundation
import Ledger
import Metering
import Policy
@testable import Reports
import Testing

@Suite("policy simulate")
struct PolicySimulationTests {
    private func policy(plans: String) throws -> PolicySet {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("simulate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try """
            providers:
              openai: { dialect: openai, base_url: "http://127.0.0.1:9/v1" }
            models:
              - { match: "gpt-*", provider: openai }
              - { match: "o4-*", provider: openai }
            """.write(to: dir.appendingPathComponent("providers.yaml"), atomically: true, encoding: .utf8)
        try """
            - { model: "gpt-4o-mini", effective_from: "2024-01-01", input: "1", output: "1" }
            - { model: "o4-mini", effective_from: "2024-01-01", input: "1", output: "1" }
            """.write(to: dir.appendingPathComponent("prices.yaml"), atomically: true, encoding: .utf8)
        try plans.write(to: dir.appendingPathComponent("plans.yaml"), atomically: true, encoding: .utf8)
        return try PolicyLoader.load(directory: dir.path, environment: [:])
    }

    /// A call of 10 µ$ (at $1 per 1M tokens: 4 input + 6 output tokens).
    private func call(_ n: Int, user: String, model: String = "gpt-4o-mini", asked: Int? = nil,
                      outcome: Outcome = .ok, lasting: Int64 = 500_000) -> LedgerEntry {
        let price = ModelPrice(model: ModelPattern(model), effectiveFrom: Day("2024-01-01")!,
                               input: Money(picodollars: 1_000_000), cachedInput: Money(picodollars: 1_000_000),
                               cacheWrite: Money(picodollars: 1_000_000), output: Money(picodollars: 1_000_000))
        let usage = Usage(inputTokens: 4, outputTokens: 6)
        return LedgerEntry(id: "c\(n)", requestId: "r\(n)", startedAt: day0 + Int64(n) * 1_000_000,
                           endedAt: day0 + Int64(n) * 1_000_000 + lasting, user: user, dialect: .openai,
                           route: "chat.completions", modelRequested: model, status: 200, outcome: outcome,
                           usage: usage, usageSource: .provider, cost: price.cost(of: usage)!, price: price,
                           outputCapRequested: asked)
    }

    @Test("counts what the candidate plans would refuse and the spend they would save")
    func refusalsAndSavings() throws {
        let candidate = try policy(plans: """
            defaults: { plan: small }
            plans:
              small: { models: ["gpt-4o-mini"], budget: { daily_usd: "0.00002" } }
              capped: { max_output_tokens: 2, on_output_over_cap: clamp }
            users: { carol: { plan: capped } }
            """)
        let entries = [
            // Each asks for the 6 output tokens it gets: its worst case is its cost.
            call(1, user: "alice", asked: 6), call(2, user: "alice", asked: 6), call(3, user: "alice", asked: 6),
            call(4, user: "bob", model: "o4-mini"),
            call(5, user: "carol", asked: 100),
            call(6, user: "alice", outcome: .refusedAuth),  // refused back then: not replayed
        ]
        let results = PolicySimulation.run(entries, policy: candidate)
        let alice = try #require(results.first { $0.user == "alice" })
        #expect(alice.calls == 3)
        #expect(alice.refused[.quota] == 1)
        #expect(alice.spent.picodollars == 20_000_000)
        #expect(alice.saved.picodollars == 10_000_000)
        let bob = try #require(results.first { $0.user == "bob" })
        #expect(bob.refused[.model] == 1 && bob.saved.picodollars == 10_000_000)
        let carol = try #require(results.first { $0.user == "carol" })
        #expect(carol.clamped == 1)
        #expect(carol.saved.picodollars == 4_000_000)  // 6 output tokens clamped to 2
        let table = PolicySimulation.table(results)
        #expect(table.contains("refused_quota"))
        #expect(table.split(separator: "\n").last?.hasPrefix("TOTAL") == true)
        // Only the users something changes for, and the total over everyone.
        let dave = PolicySimulation.PayerResult(user: "dave", plan: "small", calls: 7)
        let changed = PolicySimulation.table(results + [dave], everyone: false).split(separator: "\n")
        #expect(!changed.contains { $0.hasPrefix("dave") } && changed.contains { $0.hasPrefix("alice") })
        #expect(changed.last == "1 user with nothing refused or clamped not listed (in TOTAL; --all lists them)")
        let total = try #require(changed.dropLast().last?.split(separator: " ", omittingEmptySubsequences: true))
        #expect(total.prefix(2) == ["TOTAL", "12"], "\(changed)")
    }

    @Test("holds each call's worst case against budgets while it runs, as the gateway does")
    func worstCaseHolds() throws {
        // $0.001 a day = 1,000 µ$; a call costs 10 µ$, its worst case 4 µ$ of input plus its output limit.
        let candidate = try policy(plans: """
            defaults: { plan: daily }
            plans:
              daily: { budget: { daily_usd: "0.001" } }
              capped: { max_output_tokens: 100, budget: { daily_usd: "0.001" } }
            users: { carol: { plan: capped } }
            """)
        let entries = [
            // No output limit: 4,096 reserved, over the budget though the call costs 10 µ$.
            call(1, user: "alice"),
            // 400 asked: three at once hold 1,212 µ$; the third is refused, as live.
            call(2, user: "bob", asked: 400, lasting: 5_000_000),
            call(3, user: "bob", asked: 400, lasting: 5_000_000),
            call(4, user: "bob", asked: 400, lasting: 5_000_000),
            // Once the first two ended, their 10 µ$ each stay spent and the next fits.
            call(8, user: "bob", asked: 400),
            // The plan's cap is added where the call named none: 104 µ$ held, admitted.
            call(9, user: "carol"),
        ]
        let results = PolicySimulation.run(entries, policy: candidate)
        let alice = try #require(results.first { $0.user == "alice" })
        #expect(alice.refused[.quota] == 1 && alice.spent.picodollars == 0)
        let bob = try #require(results.first { $0.user == "bob" })
        #expect(bob.refused[.quota] == 1)
        #expect(bob.spent.picodollars == 30_000_000)
        let carol = try #require(results.first { $0.user == "carol" })
        #expect(carol.refused.isEmpty && carol.clamped == 0 && carol.spent.picodollars == 10_000_000)
    }

    @Test("a call refused for its budget takes nothing from the rate limit, as live")
    func budgetRefusalsKeepTheRate() throws {
        let candidate = try policy(plans: """
            defaults: { plan: broke }
            plans: { broke: { requests_per_minute: 2, budget: { daily_usd: "0" } } }
            """)
        let entries = (1...5).map { call($0, user: "alice", asked: 6) }
        let alice = try #require(PolicySimulation.run(entries, policy: candidate).first { $0.user == "alice" })
        #expect(alice.refused[.quota] == 5 && alice.refused[.rate] == nil)
    }

    @Test("a plan that refuses over its cap refuses only a call that named more; one naming none is capped")
    func rejectCapNeedsANamedLimit() throws {
        let candidate = try policy(plans: """
            defaults: { plan: strict }
            plans: { strict: { max_output_tokens: 2, on_output_over_cap: reject } }
            """)
        let results = PolicySimulation.run([call(1, user: "dave", asked: 100), call(2, user: "dave")], policy: candidate)
        let dave = try #require(results.first { $0.user == "dave" })
        #expect(dave.refused[.cap] == 1)
        #expect(dave.clamped == 1)  // the second: the cap added, its 6 output tokens cut to 2
        #expect(dave.spent.picodollars == 6_000_000)
    }

    @Test("a call that ended in a provider's error, with no price or usage on its row, still holds its worst case")
    func failedCallsHoldTheirWorstCase() throws {
        let candidate = try policy(plans: """
            defaults: { plan: tight }
            plans: { tight: { budget: { daily_usd: "0.001" } } }
            """)
        // No output limit: 4,096 tokens at $1 per 1M is $0.004, over the day's $0.001.
        var failed = call(1, user: "erin", outcome: .upstreamError)
        failed.usage = .zero
        failed.usageSource = .none
        failed.cost = .zero
        failed.price = nil
        let erin = try #require(PolicySimulation.run([failed, call(2, user: "erin")], policy: candidate).first)
        #expect(erin.refused[.quota] == 2)
    }
}
