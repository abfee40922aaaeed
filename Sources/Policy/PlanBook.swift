import Foundation
import Metering

/// Who may use what, from `plans.yaml`: each user's plan with their overrides resolved at load
/// time, team and org budgets, the calendar's time zone, and which keys may name end users.
///
/// Immutable and resolved up front so that `effectivePlan` on the request path is a dictionary
/// look-up plus one small array, with no merging.
public struct PlanBook: Sendable, Hashable {
    /// Calendar periods (day, week, month) are cut in this zone; weeks start on Monday.
    public let timeZone: TimeZone
    /// The plan of users not listed under `users:`.
    public let defaultPlan: String
    /// Org-wide spend per hour past which calls are refused (a circuit breaker); nil = none.
    public let orgSpendRatePerHour: Money?

    /// Each plan as an unlisted user gets it; budgets carry a placeholder `.user("")` scope.
    let plans: [String: EffectivePlan]
    /// Each listed user's plan with overrides applied and budgets scoped to them.
    let users: [String: EffectivePlan]
    let teams: [String: [BudgetLimit]]
    /// Budgets shared by everyone (`.org` scope), day before week before month.
    public let orgBudgets: [BudgetLimit]
    /// Globs over a key's user name; matching keys may name the end user they act for.
    let endUserAttributors: [ModelPattern]

    init(timeZone: TimeZone, defaultPlan: String, orgSpendRatePerHour: Money?, plans: [String: EffectivePlan],
         users: [String: EffectivePlan], teams: [String: [BudgetLimit]], orgBudgets: [BudgetLimit],
         endUserAttributors: [ModelPattern]) {
        self.timeZone = timeZone
        self.defaultPlan = defaultPlan
        self.orgSpendRatePerHour = orgSpendRatePerHour
        self.plans = plans
        self.users = users
        self.teams = teams
        self.orgBudgets = orgBudgets
        self.endUserAttributors = endUserAttributors
    }

    /// Name of the plan everyone is on when there is no plans.yaml.
    public static let unlimitedPlanName = "unlimited"

    /// No plans.yaml: every user may call every routed model without limit (the behaviour
    /// before plans existed), days are cut in UTC, and no key may name end users.
    public static let unlimited = PlanBook(
        timeZone: utc, defaultPlan: unlimitedPlanName, orgSpendRatePerHour: nil,
        plans: [unlimitedPlanName: EffectivePlan(planName: unlimitedPlanName)],
        users: [:], teams: [:], orgBudgets: [], endUserAttributors: [])

    /// Named `UTC`, as a plans.yaml's `time_zone: UTC` is: the same zone, not a changed one.
    static let utc = TimeZone(identifier: "UTC")!

    /// Whether it limits nothing at all: no plan but `unlimited`, no user, team or org limit
    /// (no plans.yaml, an empty one, or one that sets only the zone).
    public var limitsNothing: Bool {
        plans == Self.unlimited.plans && users.isEmpty && teams.isEmpty && orgBudgets.isEmpty
            && orgSpendRatePerHour == nil && endUserAttributors.isEmpty
    }

    /// Plan names, sorted.
    public var planNames: [String] { plans.keys.sorted() }

    /// What applies to `user` calling as a member of `team`: their plan (the default plan when
    /// not listed) with their overrides, then their own budgets, the team's, and the org's.
    public func effectivePlan(user: String, team: String?) -> EffectivePlan {
        var plan: EffectivePlan
        if let listed = users[user] {
            plan = listed
        } else {
            // `defaultPlan` is validated to name a plan; the fallback only guards a hand-built book.
            plan = plans[defaultPlan] ?? EffectivePlan(planName: defaultPlan)
            for index in plan.budgets.indices { plan.budgets[index].scope = .user(user) }
        }
        if let team { plan.budgets += budgets(ofTeam: team) }
        plan.budgets += orgBudgets
        return plan
    }

    /// Teams plans.yaml lists, sorted (for metrics: budget gauges and bounded team labels).
    public var teamNames: [String] { teams.keys.sorted() }

    /// A plan as an unlisted user gets it (budgets scoped to `.user("")`); nil for an unknown name.
    public func plan(named name: String) -> EffectivePlan? { plans[name] }

    /// The budgets `team` shares (`.team` scope); empty for a team plans.yaml does not list.
    public func budgets(ofTeam team: String) -> [BudgetLimit] { teams[team] ?? [] }

    /// Whether a key of `keyUser` may name the end user it calls for (the end user then pays).
    public func mayAttributeEndUsers(keyUser: String) -> Bool {
        endUserAttributors.contains { $0.matches(keyUser) }
    }
}
