import Policy
import Testing

/// What a reload's log line says plans.yaml changed.
@Suite struct PlanBookChangesTests {
    static func book(_ plans: String) throws -> PlanBook {
        try PlansFileTests.fixture(plans).load(["OPENAI_API_KEY": "k"]).plans
    }

    @Test("plans, users and teams added, removed or changed are named; the default plan, org and keys said changed")
    func changesAreNamed() throws {
        let old = try Self.book("""
            defaults: { plan: free }
            plans: { free: { requests_per_minute: 5 }, pro: { requests_per_minute: 600 } }
            users: { ana: { plan: pro }, bo: { plan: free } }
            teams: { research: { budget: { daily_usd: "2" } } }
            """)
        #expect(old.changes(from: old).isEmpty)
        // The trial's slip: a sed that changed pro's rate along with free's; and a file cut before teams:.
        let new = try Self.book("""
            defaults: { plan: pro }
            plans: { free: { requests_per_minute: 5 }, pro: { requests_per_minute: 5 }, max: {} }
            users: { ana: { plan: pro }, cy: { plan: free } }
            org: { budget: { monthly_usd: "100" } }
            """)
        let changes = new.changes(from: old)
        #expect(changes.map(\.0) == ["plans", "defaults.plan", "users", "teams", "org"])
        // ana is on pro: a plan's change is a change for the users listed on it.
        #expect(changes.map(\.1) == ["+max,~pro", "free->pro", "+cy,-bo,~ana", "-research", "changed"])
    }

    @Test("many changes are counted, not listed")
    func manyAreCounted() throws {
        let users = (0..<10).map { "u\($0): { plan: free }" }.joined(separator: ", ")
        let old = try Self.book("defaults: { plan: free }\nplans: { free: {} }\n")
        let new = try Self.book("defaults: { plan: free }\nplans: { free: {} }\nusers: { \(users) }\n")
        #expect(new.changes(from: old).map(\.1) == ["+10"])
    }
}
