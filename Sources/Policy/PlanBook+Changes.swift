/// What a reload changed in plans.yaml, for its log line: an edit that did more than meant (a
/// `sed` over two plans, a file half written when it was read) shows there, not only in refusals.
extension PlanBook {
    /// `(what, summary)` for each part that differs from `old`, without spaces (logfmt): plans,
    /// users and teams as `+added,-removed,~changed` (names while there are few, else counts; a
    /// user is changed when their resolved limits are, so a plan's change counts its listed
    /// users), the default plan, the org's budgets and spend rate, the keys that may name end users.
    public func changes(from old: PlanBook) -> [(String, String)] {
        var changes: [(String, String)] = []
        if let plans = Self.summary(old.plans, plans) { changes.append(("plans", plans)) }
        if defaultPlan != old.defaultPlan { changes.append(("defaults.plan", "\(old.defaultPlan)->\(defaultPlan)")) }
        if let users = Self.summary(old.users, users) { changes.append(("users", users)) }
        if let teams = Self.summary(old.teams, teams) { changes.append(("teams", teams)) }
        if orgBudgets != old.orgBudgets || orgSpendRatePerHour != old.orgSpendRatePerHour { changes.append(("org", "changed")) }
        if endUserAttributors != old.endUserAttributors { changes.append(("keys", "changed")) }
        return changes
    }

    /// Names listed while there are at most this many changes; counts past it.
    static let namedChanges = 6

    static func summary<Value: Equatable>(_ old: [String: Value], _ new: [String: Value]) -> String? {
        let added = new.keys.filter { old[$0] == nil }.sorted()
        let removed = old.keys.filter { new[$0] == nil }.sorted()
        let changed = new.keys.filter { old[$0] != nil && old[$0] != new[$0] }.sorted()
        let count = added.count + removed.count + changed.count
        guard count > 0 else { return nil }
        let parts = [("+", added), ("-", removed), ("~", changed)].filter { !$0.1.isEmpty }
        if count <= namedChanges {
            return parts.flatMap { sign, names in names.map { sign + $0 } }.joined(separator: ",")
        }
        return parts.map { "\($0)\($1.count)" }.joined(separator: ",")
    }
}
