import Metering
import Policy

/// Label values for `GET /metrics`, bounded by the policy in force or by code, never by what
/// callers send: a caller can put any model name in a body and, through a service key, any end
/// user name, and each distinct label value is a new series Prometheus keeps for good.
///
/// - `model`: a model the policy names exactly (a route or a price entry); else the price entry's
///   or route's glob that matched it (`claude-3-5-haiku-*`); else `other`; `none` when the call
///   named no model (refused before its body was read).
/// - `route`: an `Endpoint` name, else `other`. `outcome`: the ledger's outcome.
/// - `plan`, `provider`: names from the policy (`none` when the call had none).
/// - `team`: built per policy in `TeamLabels` (teams are set on keys by admins, not by callers).
struct MetricLabels: Sendable {
    let version: String
    private let exactModels: Set<String>
    private let routes: [ModelPattern]
    private let plans: Set<String>
    private let providers: Set<String>
    let listedTeams: Set<String>

    static let none = "none"
    static let other = "other"

    init(_ policy: PolicySet) {
        version = policy.version
        var exact = Set<String>()
        for entry in policy.prices.entries where entry.model.isExact { exact.insert(entry.model.text) }
        for route in policy.routes where route.pattern.isExact { exact.insert(route.pattern.text) }
        exactModels = exact
        routes = policy.routes.map(\.pattern)
        plans = Set(policy.plans.planNames)
        providers = Set(policy.providers.keys)
        listedTeams = Set(policy.plans.teamNames)
    }

    func model(_ requested: String?, price: ModelPrice?) -> String {
        guard let requested else { return Self.none }
        if exactModels.contains(requested) { return requested }
        if let price { return price.model.text }
        return routes.first { $0.matches(requested) }?.text ?? Self.other
    }

    func plan(_ name: String?) -> String {
        guard let name else { return Self.none }
        return plans.contains(name) ? name : Self.other
    }

    func provider(_ name: String?) -> String {
        guard let name else { return Self.none }
        return providers.contains(name) ? name : Self.other
    }

    static func route(_ route: String) -> String {
        Endpoint(rawValue: route) != nil ? route : other
    }
}

/// Team label values: teams plans.yaml lists, plus the first `cap` other teams seen on keys
/// (admins name teams when they create keys; the cap bounds a key store with many teams).
struct TeamLabels: Sendable {
    static let cap = 100
    private var unlisted = Set<String>()

    mutating func label(_ team: String?, listed: Set<String>) -> String {
        guard let team else { return MetricLabels.none }
        if listed.contains(team) || unlisted.contains(team) { return team }
        guard unlisted.count < Self.cap else { return MetricLabels.other }
        unlisted.insert(team)
        return team
    }
}
