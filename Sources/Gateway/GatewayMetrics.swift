import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Ledger
import Metering
import Policy
import Prometheus
import Synchronization

/// What `GET /metrics` shows, in Prometheus' text format (README, "Metrics"). Labels are bounded
/// by the policy or by code (`MetricLabels`), never by what callers send.
///
/// Calls are counted from their committed ledger row (`recordCall`, on the ledger writer thread),
/// so metrics and the ledger agree; the handles of each label set are cached, so a call costs a
/// few dictionary look-ups and atomic adds, not a registry look-up with label arrays. Upstream
/// load is counted by `ProxiedCall` as it happens. Budget, spend and policy gauges are read at
/// scrape time.
final class GatewayMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let policies: PolicyReloader
    private let enforcer: Enforcer
    private let series = Mutex(SeriesCache())
    private let upstreamLoads = Mutex([String: UpstreamLoad]())
    private let activity: Mutex<SpendActivity>
    private let ledgerBatchRows: ValueHistogram
    private let ledgerCommitDuration: DurationHistogram
    private let ledgerCheckpoints: [LedgerWriter.Options.Checkpoint: Counter]
    private let ledgerCheckpointHold: DurationHistogram
    private let unknownCallerRefusalsUnrecorded: Counter
    /// Scrapes render on a thread of their own, one at a time: with 20,000 users' budgets a
    /// render took 0.1–0.2 s, which on an event loop held every call of its connections as long.
    /// Started by the first scrape (nil), none once shut down.
    private let scrapes = NIOLockedValueBox<(pool: NIOThreadPool?, stopped: Bool)>((nil, false))

    static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(120),
    ]
    static let commitBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .seconds(1),
    ]
    static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024, 4_096]

    init(policies: PolicyReloader, enforcer: Enforcer) {
        self.policies = policies
        self.enforcer = enforcer
        activity = Mutex(SpendActivity(timeZone: policies.policy.plans.timeZone))
        ledgerBatchRows = registry.makeValueHistogram(
            descriptor: .named("tokenctl_ledger_batch_rows",
                "Rows per ledger transaction (group commit)"),
            buckets: Self.batchBuckets)
        ledgerCommitDuration = registry.makeDurationHistogram(
            descriptor: .named("tokenctl_ledger_commit_duration_seconds",
                "Time to write and commit one ledger transaction"),
            buckets: Self.commitBuckets)
        ledgerCheckpoints = LedgerWriter.Options.Checkpoint.allCases.reduce(into: [:]) { [registry] counters, kind in
            counters[kind] = registry.makeCounter(
                descriptor: .named("tokenctl_ledger_checkpoints_total",
                    "SQLite WAL checkpoints, by kind (background: beside the commits; catch_up: the writer copying what a background one left; forced: bounding the WAL)"),
                labels: [("kind", kind.rawValue)])
        }
        ledgerCheckpointHold = registry.makeDurationHistogram(
            descriptor: .named("tokenctl_ledger_checkpoint_hold_seconds",
                "Time the ledger writer held every commit for a catch_up or forced checkpoint (calls ending meanwhile wait for their rows)"),
            buckets: Self.commitBuckets)
        unknownCallerRefusalsUnrecorded = registry.makeCounter(
            descriptor: .named("tokenctl_unknown_caller_refusals_unrecorded_total",
                "Refusals of requests without a known key answered without a ledger row: past unknown_callers in gateway.yaml"))
    }

    func shutdown() {
        let pool = scrapes.withLockedValue { state -> NIOThreadPool? in
            state.stopped = true
            return state.pool
        }
        try? pool?.syncShutdownGracefully()
    }

    /// `render` (the caller's closure) off the event loops; the future completes on `loop`
    /// (fails once shut down).
    func renderOffLoop(on loop: any EventLoop, _ render: @escaping @Sendable () -> [UInt8]) -> EventLoopFuture<[UInt8]> {
        let pool = scrapes.withLockedValue { state -> NIOThreadPool? in
            guard !state.stopped else { return nil }
            if state.pool == nil {
                state.pool = NIOThreadPool(numberOfThreads: 1)
                state.pool?.start()
            }
            return state.pool
        }
        guard let pool else { return loop.makeFailedFuture(NIOThreadPoolError.ThreadPoolInactive()) }
        return pool.runIfActive(eventLoop: loop, render)
    }

    /// Ledger writer options that feed the batch metrics.
    var ledgerOptions: LedgerWriter.Options {
        var options = LedgerWriter.Options()
        options.onBatchCommitted = { [ledgerBatchRows, ledgerCommitDuration] rows, duration in
            ledgerBatchRows.record(Double(rows))
            ledgerCommitDuration.record(duration)
        }
        options.onCheckpoint = { [ledgerCheckpoints, ledgerCheckpointHold] kind, _, held in
            ledgerCheckpoints[kind]?.increment()
            if kind != .background { ledgerCheckpointHold.record(held) }
        }
        return options
    }

    /// Reads today's and this month's spend from the ledger (start-up, before serving).
    func restoreActivity(from reader: any LedgerSource, timeZone: TimeZone, now: Int64) throws {
        var restored = SpendActivity(timeZone: timeZone)
        try restored.restore(from: reader, now: now, timeZone: timeZone)
        activity.withLock { $0 = restored }
    }

    // MARK: Per call

    /// Counts a call whose row has committed.
    func recordCall(_ entry: LedgerEntry) {
        let policy = policies.policy
        let refused = entry.outcome.isRefusal
        series.withLock { cache in
            let labels = cache.labels(for: policy)
            let model = labels.model(entry.modelRequested, price: entry.price)
            let call = cache.call(CallKey(route: MetricLabels.route(entry.route), model: model, outcome: entry.outcome),
                                  registry)
            call.requests.increment()
            call.duration.recordNanoseconds(max(0, entry.latencyMicros) * 1_000)
            if let ttft = entry.ttftMicros { call.ttft.recordNanoseconds(max(0, ttft) * 1_000) }
            if refused {
                cache.refusal(PlanKey(name: entry.outcome.refusalReason, plan: labels.plan(entry.plan)), registry).increment()
                return
            }
            let provider = labels.provider(entry.provider)
            if let upstream = entry.upstreamMicros {
                cache.upstreamDuration(provider, registry).recordNanoseconds(max(0, upstream) * 1_000)
            }
            if entry.outcome.isError {
                cache.error(ErrorKey(kind: entry.outcome.rawValue, provider: provider), registry).increment()
            }
            let usage = entry.usage
            if usage != .zero {
                let tokens = cache.tokens(model, registry)
                if usage.inputTokens > 0 { tokens.input.increment(by: Int64(usage.inputTokens)) }
                if usage.cachedInputTokens > 0 { tokens.cachedInput.increment(by: Int64(usage.cachedInputTokens)) }
                if usage.cacheWriteTokens > 0 { tokens.cacheWrite.increment(by: Int64(usage.cacheWriteTokens)) }
                if usage.outputTokens > 0 { tokens.output.increment(by: Int64(usage.outputTokens)) }
                if usage.webSearches > 0 || usage.fileSearches > 0 {
                    let searches = cache.searches(model, registry)
                    if usage.webSearches > 0 { searches.web.increment(by: Int64(usage.webSearches)) }
                    if usage.fileSearches > 0 { searches.file.increment(by: Int64(usage.fileSearches)) }
                }
            }
            if entry.cost > .zero {
                let team = cache.teams.label(entry.team, listed: labels.listedTeams)
                // A float for dashboards only; the ledger and reports keep exact integers.
                cache.cost(CostKey(model: model, team: team, plan: labels.plan(entry.plan)), registry)
                    .increment(by: Double(entry.cost.picodollars) / 1e12)
            }
        }
        guard !refused else { return }
        let timeZone = policy.plans.timeZone
        activity.withLock {
            $0.add(user: entry.user, picodollars: entry.cost.picodollars, startedAt: entry.startedAt,
                   now: entry.endedAt, timeZone: timeZone)
        }
    }

    /// A row that could not commit (its client's connection is cut instead).
    /// A refusal answered without a row, by reason and plan: the ledger was failing, or an unknown
    /// caller's refusal was past `unknown_callers` (`unknownCaller`, counted apart as well).
    func recordUnrecordedRefusal(reason: String, plan: String? = nil, unknownCaller: Bool = false) {
        if unknownCaller { unknownCallerRefusalsUnrecorded.increment() }
        series.withLock { cache in
            cache.refusal(PlanKey(name: reason, plan: cache.labels(for: policies.policy).plan(plan)), registry).increment()
        }
    }

    /// A row's commit outcome: the call counted, or its failure.
    func count(_ entry: LedgerEntry, _ result: Result<Void, LedgerError>) {
        switch result {
        case .success: recordCall(entry)
        case .failure: recordCommitFailure(entry)
        }
    }

    func recordCommitFailure(_ entry: LedgerEntry) {
        series.withLock { cache in
            let provider = cache.labels(for: policies.policy).provider(entry.provider)
            cache.error(ErrorKey(kind: "ledger_commit_failed", provider: provider), registry).increment()
        }
    }

    /// The load gauges of `provider` (a policy name), for one call to hold.
    func upstreamLoad(provider: String) -> UpstreamCallLoad {
        UpstreamCallLoad(load(of: provider))
    }

    private func load(of provider: String) -> UpstreamLoad {
        upstreamLoads.withLock { loads in
            if let load = loads[provider] { return load }
            let load = UpstreamLoad(provider: provider, registry: registry)
            loads[provider] = load
            return load
        }
    }

    // MARK: Scrape

    /// The whole exposition, with the gauges read at scrape time. The counts of calls in flight
    /// are read after the registry: a call is admitted before it joins a provider's backlog and
    /// leaves the backlog before it ends, so read in this order a call in a backlog is never
    /// missing from `tokenctl_calls_in_flight` (read first, a call admitted meanwhile was).
    func render(policyVersion: String, reloadErrors: Int, callsInFlight: @autoclosure () -> Int,
                openReservations: @autoclosure () -> Int, ledgerBacklog: @autoclosure () -> Int,
                connections: @autoclosure () -> (open: Int, refused: Int)) -> [UInt8] {
        let policy = policies.policy
        let now = UnixTime.nowMicros()
        // Every provider of the policy shows its load, 0 when idle.
        for name in policy.providers.keys { _ = load(of: name) }
        var out = MetricsExposition(registry.emitToBuffer())
        let (callsInFlight, openReservations, ledgerBacklog) = (callsInFlight(), openReservations(), ledgerBacklog())
        let connections = connections()

        out.family("tokenctl_policy_info", "gauge", "The policy in force (its version is a hash of the files)")
        out.sample("tokenctl_policy_info", ["version": policyVersion], 1)
        out.family("tokenctl_policy_reload_errors_total", "counter",
                   "Policy changes refused since start (the previous policy stayed in force)")
        out.sample("tokenctl_policy_reload_errors_total", [:], Double(reloadErrors))
        out.family("tokenctl_policy_files_refused", "gauge",
                   "1 while the policy files on disk are refused: the previous policy serves, but a restart would not start")
        out.sample("tokenctl_policy_files_refused", [:], policies.lastError == nil ? 0 : 1)
        out.family("tokenctl_calls_in_flight", "gauge", "Admitted calls not yet ended")
        out.sample("tokenctl_calls_in_flight", [:], Double(callsInFlight))
        out.family("tokenctl_quota_reservations_open", "gauge", "Quota reservations of calls in flight")
        out.sample("tokenctl_quota_reservations_open", [:], Double(openReservations))
        out.family("tokenctl_client_connections", "gauge", "Client connections open")
        out.sample("tokenctl_client_connections", [:], Double(connections.open))
        out.family("tokenctl_client_connections_refused_total", "counter",
                   "Client connections closed as they were accepted: max_connections were open")
        out.sample("tokenctl_client_connections_refused_total", [:], Double(connections.refused))
        out.family("tokenctl_ledger_backlog", "gauge", "Rows waiting for the ledger writer")
        out.sample("tokenctl_ledger_backlog", [:], Double(ledgerBacklog))

        if let limit = policy.plans.orgSpendRatePerHour {
            out.family("tokenctl_org_spend_rate_limit_usd_per_hour", "gauge",
                       "The org's spend-rate limit (plans.yaml org.spend_rate.usd_per_hour)")
            out.sample("tokenctl_org_spend_rate_limit_usd_per_hour", [:], Self.usd(Int128(limit.picodollars)))
        }
        out.family("tokenctl_org_spend_last_hour_usd", "gauge",
                   "Spend of the last hour as the spend-rate breaker counts it (sliding window of minutes)")
        out.sample("tokenctl_org_spend_last_hour_usd", [:],
                   Self.usd(Int128(enforcer.breaker.spentLastHour(now: now).picodollars)))

        let timeZone = policy.plans.timeZone
        let spend = activity.withLock { activity -> SpendActivity in
            activity.roll(now: now, timeZone: timeZone)
            return activity
        }
        out.family("tokenctl_spend_usd", "gauge",
                   "Spend of the current calendar period in the policy's time zone (calls that started in it)")
        out.sample("tokenctl_spend_usd", ["period": "day"], Self.usd(spend.daySpend))
        out.sample("tokenctl_spend_usd", ["period": "month"], Self.usd(spend.monthSpend))
        out.family("tokenctl_active_users", "gauge",
                   "Users with at least one call that was not refused in the current calendar period")
        out.sample("tokenctl_active_users", ["period": "day"], Double(spend.dayUsers.count))
        out.sample("tokenctl_active_users", ["period": "month"], Double(spend.monthUsers.count))

        let settings = policy.gateway.metrics
        if settings.userLabels == .top {
            out.family("tokenctl_top_user_spend_usd", "gauge",
                       "Spend of the period's biggest spenders (metrics.user_labels: top, top_users in gateway.yaml)")
            for (period, users) in [("day", spend.dayUsers), ("month", spend.monthUsers)] {
                for top in SpendActivity.top(settings.topUsers, of: users) {
                    out.sample("tokenctl_top_user_spend_usd", ["user": top.user, "period": period],
                               Self.usd(top.picodollars))
                }
            }
        }

        // Shared budgets (PostgreSQL) are not in this process's book: no gauges rather than zeros.
        if enforcer.sharedQuotas == nil {
            BudgetGauges.write(plans: policy.plans,
                               uses: enforcer.quotas.currentUse(now: now, timeZone: enforcer.startupTimeZone), into: &out)
        }
        return out.bytes
    }

    static func usd(_ picodollars: Int128) -> Double { picodollars.double / 1e12 }
}

// MARK: - Cached handles

private struct CallKey: Hashable {
    var route: String
    var model: String
    var outcome: Outcome
}

private struct CallSeries {
    let requests: Counter
    let duration: DurationHistogram
    let ttft: DurationHistogram
}

private struct TokenSeries {
    let input: Counter
    let cachedInput: Counter
    let cacheWrite: Counter
    let output: Counter
}

private struct SearchSeries {
    let web: Counter
    let file: Counter
}

private struct CostKey: Hashable {
    var model: String
    var team: String
    var plan: String
}

private struct PlanKey: Hashable {
    var name: String
    var plan: String
}

private struct ErrorKey: Hashable {
    var kind: String
    var provider: String
}

/// Metric handles per label set, and the label book of the policy they were built for.
private struct SeriesCache {
    private var book: MetricLabels?
    var teams = TeamLabels()
    private var calls: [CallKey: CallSeries] = [:]
    private var tokens: [String: TokenSeries] = [:]
    private var searches: [String: SearchSeries] = [:]
    private var costs: [CostKey: Counter] = [:]
    private var refusals: [PlanKey: Counter] = [:]
    private var errors: [ErrorKey: Counter] = [:]
    private var upstream: [String: DurationHistogram] = [:]

    /// The handle cached under `key`, made (and registered) on first use.
    private static func cached<Key: Hashable, Value>(_ store: inout [Key: Value], _ key: Key,
                                                     _ make: () -> Value) -> Value {
        if let value = store[key] { return value }
        let value = make()
        store[key] = value
        return value
    }

    mutating func labels(for policy: PolicySet) -> MetricLabels {
        if let book, book.version == policy.version { return book }
        let fresh = MetricLabels(policy)
        book = fresh
        return fresh
    }

    mutating func call(_ key: CallKey, _ registry: PrometheusCollectorRegistry) -> CallSeries {
        Self.cached(&calls, key) {
            let labels = [("route", key.route), ("model", key.model), ("outcome", key.outcome.rawValue)]
            return CallSeries(
                requests: registry.makeCounter(descriptor: .named("tokenctl_requests_total",
                    "Calls recorded in the ledger, by route, model and outcome"),
                    labels: labels),
                duration: registry.makeDurationHistogram(
                    descriptor: .named("tokenctl_request_duration_seconds",
                        "Time from the request to the call's recorded end, by route, model and outcome"),
                    labels: labels, buckets: GatewayMetrics.durationBuckets),
                ttft: registry.makeDurationHistogram(
                    descriptor: .named("tokenctl_ttft_seconds",
                        "Time from the request to the provider's first body byte, by route, model and outcome"),
                    labels: labels, buckets: GatewayMetrics.durationBuckets))
        }
    }

    mutating func tokens(_ model: String, _ registry: PrometheusCollectorRegistry) -> TokenSeries {
        Self.cached(&tokens, model) {
            let counter = Self.counters("tokenctl_tokens_total",
                                        "Tokens by model and direction (input, cached_input, cache_write, output)",
                                        model: model, by: "direction", registry)
            return TokenSeries(input: counter("input"), cachedInput: counter("cached_input"),
                               cacheWrite: counter("cache_write"), output: counter("output"))
        }
    }

    mutating func searches(_ model: String, _ registry: PrometheusCollectorRegistry) -> SearchSeries {
        Self.cached(&searches, model) {
            let counter = Self.counters("tokenctl_searches_total",
                                        "Server-side searches billed a fee each, by model and kind (web, file)",
                                        model: model, by: "kind", registry)
            return SearchSeries(web: counter("web"), file: counter("file"))
        }
    }

    /// The counters of one metric for `model`, one per value of a second label.
    private static func counters(_ name: String, _ help: String, model: String, by label: String,
                                 _ registry: PrometheusCollectorRegistry) -> (String) -> Counter {
        { value in registry.makeCounter(descriptor: .named(name, help), labels: [("model", model), (label, value)]) }
    }

    mutating func cost(_ key: CostKey, _ registry: PrometheusCollectorRegistry) -> Counter {
        Self.cached(&costs, key) {
            registry.makeCounter(
                descriptor: .named("tokenctl_cost_usd_total",
                    "Spend in US dollars by model, team and plan (a float for dashboards; the ledger is exact)"),
                labels: [("model", key.model), ("team", key.team), ("plan", key.plan)])
        }
    }

    mutating func refusal(_ key: PlanKey, _ registry: PrometheusCollectorRegistry) -> Counter {
        Self.cached(&refusals, key) {
            registry.makeCounter(
                descriptor: .named("tokenctl_refusals_total",
                    "Calls the gateway refused, by reason (the ledger outcome without refused_) and plan"),
                labels: [("reason", key.name), ("plan", key.plan)])
        }
    }

    mutating func error(_ key: ErrorKey, _ registry: PrometheusCollectorRegistry) -> Counter {
        Self.cached(&errors, key) {
            registry.makeCounter(
                descriptor: .named("tokenctl_errors_total",
                    "Failed calls by kind (upstream_error, upstream_unreachable, timeout, interrupted, ledger_commit_failed) and provider"),
                labels: [("kind", key.kind), ("provider", key.provider)])
        }
    }

    mutating func upstreamDuration(_ provider: String, _ registry: PrometheusCollectorRegistry) -> DurationHistogram {
        Self.cached(&upstream, provider) {
            registry.makeDurationHistogram(
                descriptor: .named("tokenctl_upstream_duration_seconds",
                    "Time of the upstream transfer, from sending the request to its last byte, by provider"),
                labels: [("provider", provider)],
                buckets: GatewayMetrics.durationBuckets)
        }
    }
}

extension Int128 {
    /// As a Double, through Int64 when it fits: the generic Int128 conversion was a third of a
    /// scrape's time with 20,000 users' budgets.
    var double: Double { Int64(exactly: self).map(Double.init) ?? Double(self) }
}
