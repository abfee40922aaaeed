import Metering

/// One validated, immutable policy: what the gateway consults on every call.
/// Built by `PolicyLoader`; a reload builds a new set and swaps it in whole.
/// A class: every call takes the current set, and copying a struct of this size retained each
/// of its dozens of references (about 1 % of the event loop's time in a profile).
public final class PolicySet: Sendable {
    public let providers: [String: Provider]
    /// In file order; the first route whose pattern matches a model decides its provider.
    public let routes: [ModelRoute]
    public let prices: PriceBook
    public let gateway: GatewaySettings
    /// Plans, user overrides, team and org budgets from plans.yaml; `.unlimited` without it.
    public let plans: PlanBook
    /// Short hash of the policy files' bytes, to tell in metrics and logs which policy served a call.
    public let version: String
    /// Things that load but deserve an admin's look (unset key variables, unpriced routes, ...).
    public let warnings: [PolicyProblem]
    /// Files outside the YAML that the policy was read from (`ca_file`), resolved, with their
    /// `FileStamp` from just before the load read them.
    public let namedFiles: [String: String]
    /// The directory's policy files the load read (`providers.yaml`, ...), by name, with their
    /// `FileStamp` from just before it read each; empty for a set loaded from memory.
    public let sourceFiles: [String: String]
    /// Per route, in order: the longest its calls may take (`serving(model:)`).
    private let longestCalls: [Int64]
    /// `listedModels()`, worked out once (a refusal's suggestion reads it too).
    private let listed: [String]

    public init(providers: [String: Provider], routes: [ModelRoute], prices: PriceBook,
                gateway: GatewaySettings = .defaults, plans: PlanBook = .unlimited, version: String = "",
                warnings: [PolicyProblem] = [], namedFiles: [String: String] = [:],
                sourceFiles: [String: String] = [:]) {
        self.providers = providers
        self.routes = routes
        self.prices = prices
        self.gateway = gateway
        self.plans = plans
        self.version = version
        self.warnings = warnings
        self.namedFiles = namedFiles
        self.sourceFiles = sourceFiles
        listed = Self.listed(routes: routes, prices: prices, providers: providers)
        longestCalls = routes.map { route in
            let chain = [route.provider] + route.fallbacks.compactMap { Self.route(for: $0, in: routes)?.provider }
            // From the call's start: its body may take `body_timeout_ms` to arrive.
            return chain.reduce(Int64(gateway.bodyTimeoutMs) * 1_000) { total, name in
                total + (providers[name]?.longestCallMicros ?? 0)
            }
        }
    }

    /// The provider serving `model`, and the longest a call to it may take from its start (waits,
    /// retries and fallbacks included: its budget hold must outlive it, `QuotaBook`), from one
    /// route look-up (admission's, on every call); nil if no route matches.
    public func serving(model: String) -> (provider: Provider, longestCallMicros: Int64)? {
        guard let index = routes.firstIndex(where: { $0.pattern.matches(model) }),
              let provider = providers[routes[index].provider] else { return nil }
        return (provider, longestCalls[index])
    }

    /// The route a model takes: the first whose pattern matches.
    public func route(forModel model: String) -> ModelRoute? {
        Self.route(for: model, in: routes)
    }

    /// Also for what `init` works out before the set exists.
    private static func route(for model: String, in routes: [ModelRoute]) -> ModelRoute? {
        routes.first { $0.pattern.matches(model) }
    }

    /// The provider serving a model, or nil if no route matches (the call is refused).
    public func provider(forModel model: String) -> Provider? {
        route(forModel: model).flatMap { providers[$0.provider] }
    }

    /// Models to advertise on `GET /v1/models`: every exact name in the price book or in a route
    /// that routes to a provider, sorted. Globs are not listed: they name no particular model.
    public func listedModels() -> [String] { listed }

    private static func listed(routes: [ModelRoute], prices: PriceBook, providers: [String: Provider]) -> [String] {
        func routed(_ model: String) -> Bool {
            route(for: model, in: routes).map { providers[$0.provider] != nil } ?? false
        }
        var names = Set<String>()
        for entry in prices.entries where entry.model.isExact && routed(entry.model.text) {
            names.insert(entry.model.text)
        }
        for route in routes where route.pattern.isExact && routed(route.pattern.text) {
            names.insert(route.pattern.text)
        }
        return names.sorted()
    }
}
