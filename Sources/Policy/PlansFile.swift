import Foundation
import Metering
import Yams

/// `plans.yaml` (optional): plans (rate limits, output cap, budgets, allowed models), the plan
/// and overrides of listed users, team and org budgets, the org's spend-rate breaker, the time
/// zone calendar periods are cut in, and which keys may name end users. The shipped file
/// documents the format with a full example.
///
/// Absent or empty, and equally without a `plans:` key, everyone is on the built-in `unlimited`
/// plan: adding the file must never be needed to keep the proxy working as before.
enum PlansFile {
    static let name = "plans.yaml"
    static let rootKeys = ["time_zone", "defaults", "plans", "users", "teams", "org", "keys"]
    static let planKeys = ["requests_per_minute", "tokens_per_minute", "max_concurrent", "max_output_tokens",
                           "on_output_over_cap", "budget", "tokens", "models"]
    /// A user may override any plan field.
    static let userKeys = ["plan"] + planKeys
    static let teamKeys = ["budget", "tokens"]
    static let orgKeys = ["budget", "tokens", "spend_rate"]

    /// What `models` patterns must be served by; nil skips the check because providers.yaml or
    /// prices.yaml has problems of its own (reported there; checking against them only adds noise).
    struct ModelCatalog {
        let routes: [ModelPattern]
        let prices: [ModelPattern]
        let refuseUnpriced: Bool

        /// Why a plan may not list `pattern`: a model no route serves would be refused anyway, and
        /// so would an unpriced one while unpriced_models is refuse; either is a mistake in the plan.
        func problem(with pattern: ModelPattern) -> String? {
            // Intersection, not coverage: `claude-3-5-haiku-*` is fine when `claude-*` is routed.
            guard routes.contains(where: { GlobRelation.intersects($0, pattern) }) else {
                return "model '\(pattern)' is not routed (no route in providers.yaml serves it)"
            }
            guard !refuseUnpriced || prices.contains(where: { GlobRelation.intersects($0, pattern) }) else {
                let what = pattern.isExact ? "no price for model '\(pattern)' in prices.yaml"
                                           : "no price in prices.yaml matches any model of '\(pattern)'"
                return what + "; every call would be refused (add a price, or set unpriced_models: allow in gateway.yaml)"
            }
            return nil
        }
    }

    /// Whether the file sets anything but `time_zone`: one that names a plan or a default
    /// means what it says, even if that limits nothing.
    static func saysSomething(_ root: Node?) -> Bool {
        guard case .mapping(let fields)? = root else { return false }
        return fields.keys.contains { $0.string != "time_zone" }
    }

    static func read(_ root: Node?, catalog: ModelCatalog?, _ reader: inout PolicyFileReader) -> PlanBook {
        guard let root, PolicyFileReader.tag(of: root) != .null,
              let fields = reader.mapping(root, "", allowed: rootKeys) else { return .unlimited }

        var timeZone = PlanBook.utc
        if let entry = fields["time_zone"], let text = reader.string(entry) {
            if let zone = TimeZone(identifier: text) {
                timeZone = zone
            } else {
                reader.problem(entry.value, entry.path,
                               "unknown time zone '\(text)' (expected an IANA name such as UTC or Europe/Berlin)")
            }
        }

        let plans: [String: PlanTerms]
        if let entry = fields["plans"] {
            plans = readPlans(entry, catalog, &reader)
        } else {
            plans = [PlanBook.unlimitedPlanName: PlanTerms()]
        }

        var defaultPlan = PlanBook.unlimitedPlanName
        if let entry = fields["defaults"] {
            if let defaults = reader.mapping(entry.value, entry.path, allowed: ["plan"]),
               let planEntry = reader.require(defaults, "plan"),
               let name = planName(planEntry, in: plans, &reader) {
                defaultPlan = name
            }
        } else if fields["plans"] != nil {
            reader.problem(fields.node, "defaults",
                           "missing: with plans defined, defaults.plan must name the plan of users not listed under users")
        }

        var users: [String: EffectivePlan] = [:]
        if let entry = fields["users"], let listed = reader.mapping(entry.value, entry.path) {
            for item in listed.entries {
                if item.key.isEmpty { reader.problem(item.keyNode, item.path, "empty user name") }
                guard let userFields = reader.mapping(item.value, item.path, allowed: userKeys) else { continue }
                var name = defaultPlan
                if let planEntry = userFields["plan"], let chosen = planName(planEntry, in: plans, &reader) {
                    name = chosen
                }
                let own = readTerms(userFields, catalog, &reader)
                let terms = (plans[name] ?? PlanTerms()).overridden(by: own)
                warnIfCapActionIdle(userFields, terms, &reader)
                var plan = terms.effective(planName: name, user: item.key)
                plan.modelsFromUser = own.models != nil
                users[item.key] = plan
            }
        }

        var teams: [String: [BudgetLimit]] = [:]
        if let entry = fields["teams"], let listed = reader.mapping(entry.value, entry.path) {
            for item in listed.entries {
                if item.key.isEmpty { reader.problem(item.keyNode, item.path, "empty team name") }
                guard let teamFields = reader.mapping(item.value, item.path, allowed: teamKeys) else { continue }
                teams[item.key] = readBudgets(teamFields, &reader).limits(for: .team(item.key))
            }
        }

        var orgBudgets: [BudgetLimit] = []
        var spendRate: Money?
        if let entry = fields["org"], let orgFields = reader.mapping(entry.value, entry.path, allowed: orgKeys) {
            orgBudgets = readBudgets(orgFields, &reader).limits(for: .org)
            if let rateEntry = orgFields["spend_rate"],
               let rate = reader.mapping(rateEntry.value, rateEntry.path, allowed: ["usd_per_hour"]),
               let usdEntry = reader.require(rate, "usd_per_hour") {
                spendRate = dollars(usdEntry, &reader)?.value
            }
        }

        let attributors = fields["keys"].map { readKeys($0, &reader) } ?? []

        return PlanBook(
            timeZone: timeZone, defaultPlan: defaultPlan, orgSpendRatePerHour: spendRate,
            plans: Dictionary(uniqueKeysWithValues: plans.map { ($0.key, $0.value.effective(planName: $0.key, user: "")) }),
            users: users, teams: teams, orgBudgets: orgBudgets, endUserAttributors: attributors)
    }

    /// Every declared plan, valid or not, so one broken plan does not also make each user on it
    /// "unknown"; an empty `plans:` is a problem (remove the key to leave everyone unlimited).
    private static func readPlans(_ entry: MappingFields.Entry, _ catalog: ModelCatalog?,
                                  _ reader: inout PolicyFileReader) -> [String: PlanTerms] {
        guard let listed = reader.mapping(entry.value, entry.path) else { return [:] }
        if listed.entries.isEmpty {
            reader.problem(entry.value, entry.path,
                           "no plans defined (define at least one, or remove plans: to leave every user unlimited)")
        }
        var plans: [String: PlanTerms] = [:]
        for item in listed.entries {
            let name = item.key
            if name.isEmpty || !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) {
                reader.problem(item.keyNode, item.path, "plan names may use only letters, digits, '-', '_' and '.'")
            }
            guard let planFields = reader.mapping(item.value, item.path, allowed: planKeys) else {
                plans[name] = PlanTerms()
                continue
            }
            let terms = readTerms(planFields, catalog, &reader)
            warnIfCapActionIdle(planFields, terms, &reader)
            plans[name] = terms
        }
        return plans
    }

    /// A plan name that `plans` defines, or nil (problem recorded unless `plans` is empty, which
    /// is reported once where it is written).
    private static func planName(_ entry: MappingFields.Entry, in plans: [String: PlanTerms],
                                 _ reader: inout PolicyFileReader) -> String? {
        guard let name = reader.string(entry) else { return nil }
        if plans[name] != nil { return name }
        if !plans.isEmpty {
            reader.problem(entry.value, entry.path,
                           "unknown plan '\(name)' (expected \(PolicyFileReader.oneOf(plans.keys.sorted())))")
        }
        return nil
    }

    /// `keys.attribute_end_users`: globs over the key's user name (`svc-*`).
    private static func readKeys(_ entry: MappingFields.Entry, _ reader: inout PolicyFileReader) -> [ModelPattern] {
        guard let keys = reader.mapping(entry.value, entry.path, allowed: ["attribute_end_users"]),
              let list = keys["attribute_end_users"],
              let items = reader.sequence(list.value, list.path) else { return [] }
        var globs: [ModelPattern] = []
        for (index, item) in items.enumerated() {
            let field = "\(list.path)[\(index)]"
            guard let text = reader.string(item, field) else { continue }
            if text.isEmpty || text.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 }) {
                reader.problem(item, field, "'\(text)' is not a user name or glob (no whitespace; `*` matches any text)")
                continue
            }
            // ModelPattern is the project's `*`-glob; here it matches user names, not models.
            globs.append(ModelPattern(text))
        }
        return globs
    }

    /// An output-cap action with no cap to act on is most likely a forgotten max_output_tokens.
    private static func warnIfCapActionIdle(_ fields: MappingFields, _ terms: PlanTerms,
                                            _ reader: inout PolicyFileReader) {
        if let entry = fields["on_output_over_cap"], terms.maxOutputTokens?.value == nil {
            reader.warning(entry.keyNode, entry.path, "has no effect without max_output_tokens")
        }
    }
}
