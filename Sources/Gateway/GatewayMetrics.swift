import Ledger
import Metering
import Prometheus

/// What `GET /metrics` shows, in Prometheus' text format. Labels are bounded by the policy
/// (route, outcome, price entry), never by what callers send: a caller-chosen model name or a
/// per-user label would let any client grow the series without bound.
final class GatewayMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()
    private let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(120),
    ]

    /// Counts a call whose row has committed.
    func recordCall(_ entry: LedgerEntry) {
        let route = entry.route.count <= 40 && entry.route.allSatisfy({ $0.isLetter || $0 == "." || $0 == "_" })
            ? entry.route : "other"
        let callLabels = [("route", route), ("outcome", entry.outcome.rawValue)]
        registry.makeCounter(descriptor: Self.name("requests", "total", "Calls recorded in the ledger, by route and outcome"),
                             labels: callLabels).increment()
        registry.makeDurationHistogram(
            descriptor: Self.name("request_duration", "seconds", "Time from request to recorded end, by route and outcome"),
            labels: callLabels, buckets: durationBuckets)
            .recordNanoseconds(max(0, entry.latencyMicros) * 1_000)
        guard let priceID = entry.priceId else { return }
        let price = [("price", priceID)]
        for (direction, tokens) in [("input", entry.usage.inputTokens), ("cached_input", entry.usage.cachedInputTokens),
                                    ("cache_write", entry.usage.cacheWriteTokens), ("output", entry.usage.outputTokens)]
        where tokens > 0 {
            registry.makeCounter(descriptor: Self.name("tokens", "total", "Tokens by direction and price entry (model@effective_from)"),
                                 labels: price + [("direction", direction)])
                .increment(by: Int64(tokens))
        }
        if entry.cost > .zero {
            // A float for dashboards only; the ledger and reports keep exact integers.
            registry.makeCounter(descriptor: Self.name("cost_usd", "total", "Spend in US dollars by price entry (approximate; the ledger is exact)"),
                                 labels: price)
                .increment(by: Double(entry.cost.picodollars) / 1e12)
        }
    }

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "tokenctl", metricName: metric, unitName: unit, helpText: help)
    }

    /// The whole exposition, with the gauges read at scrape time.
    func render(policyVersion: String, reloadErrors: Int, callsInFlight: Int, openReservations: Int,
                ledgerBacklog: Int) -> [UInt8] {
        var out = registry.emitToBuffer()
        out += Array("""
            # HELP tokenctl_policy_info The policy in force (its version is a hash of the files).
            # TYPE tokenctl_policy_info gauge
            tokenctl_policy_info{version="\(policyVersion)"} 1
            # HELP tokenctl_policy_reload_errors_total Policy changes refused since start (the previous policy stayed in force).
            # TYPE tokenctl_policy_reload_errors_total counter
            tokenctl_policy_reload_errors_total \(reloadErrors)
            # HELP tokenctl_calls_in_flight Admitted calls not yet ended.
            # TYPE tokenctl_calls_in_flight gauge
            tokenctl_calls_in_flight \(callsInFlight)
            # HELP tokenctl_quota_reservations_open Quota reservations of calls in flight.
            # TYPE tokenctl_quota_reservations_open gauge
            tokenctl_quota_reservations_open \(openReservations)
            # HELP tokenctl_ledger_backlog Rows waiting for the ledger writer.
            # TYPE tokenctl_ledger_backlog gauge
            tokenctl_ledger_backlog \(ledgerBacklog)

            """.utf8)
        return out
    }
}
