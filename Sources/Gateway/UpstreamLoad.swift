import Prometheus

/// One provider's load, as gauges, and what its failures cost, as counters:
///
/// - `tokenctl_upstream_in_flight{provider}`: calls forwarded to it and not yet ended.
/// - `tokenctl_upstream_backlog{provider,stage}`: calls waiting on it. Stage `awaiting_head`:
///   sent, no response head yet (a slow or overloaded provider shows here first); stage
///   `queued`: admitted, waiting for one of the provider's `max_concurrent` slots. `sum by
///   (provider)` is the whole backlog.
/// - `tokenctl_upstream_retries_total{provider,reason}`: attempts made again at it.
/// - `tokenctl_upstream_fallbacks_total{provider}`: calls it gave up that moved to a fallback model.
final class UpstreamLoad: Sendable {
    /// Why an attempt was made again at the same provider.
    enum RetryReason: String, CaseIterable {
        /// A 502, 503 or 529 answer.
        case status
        /// A connect error (DNS, TCP, TLS handshake).
        case connect
        /// A pooled connection closed as the call went out, or a GOAWAY refused it: the provider
        /// never read it (not one of the provider's `retries`).
        case staleConnection = "stale_connection"
    }

    let inFlight: Gauge
    let awaitingHead: Gauge
    let queued: Gauge
    let retries: [RetryReason: Counter]
    let fallbacks: Counter

    init(provider: String, registry: PrometheusCollectorRegistry) {
        inFlight = registry.makeGauge(descriptor: .named("tokenctl_upstream_in_flight",
            "Calls forwarded to the provider and not yet ended"),
            labels: [("provider", provider)])
        awaitingHead = registry.makeGauge(
            descriptor: .named("tokenctl_upstream_backlog",
                "Calls waiting on the provider, by stage (awaiting_head: sent, no response head yet)"),
            labels: [("provider", provider), ("stage", "awaiting_head")])
        queued = registry.makeGauge(
            descriptor: .named("tokenctl_upstream_backlog",
                "Calls waiting on the provider, by stage (awaiting_head: sent, no response head yet)"),
            labels: [("provider", provider), ("stage", "queued")])
        retries = Dictionary(uniqueKeysWithValues: RetryReason.allCases.map { reason in
            (reason, registry.makeCounter(descriptor: .named("tokenctl_upstream_retries_total",
                "Attempts made again at the provider, by reason (status: 502/503/529; connect; stale_connection: it never read the call)"),
                labels: [("provider", provider), ("reason", reason.rawValue)]))
        })
        fallbacks = registry.makeCounter(descriptor: .named("tokenctl_upstream_fallbacks_total",
            "Calls the provider gave up that moved to a fallback model"), labels: [("provider", provider)])
    }
}

/// One call's share of its provider's load: each gauge is raised once and lowered once.
/// Lives in `ProxiedCall`, on the call's event loop.
struct UpstreamCallLoad {
    private let load: UpstreamLoad
    private var awaitingHead = false
    private var inFlight = false
    private var waitingForSlot = false

    init(_ load: UpstreamLoad) { self.load = load }

    mutating func queued() {
        guard !waitingForSlot else { return }
        waitingForSlot = true
        load.queued.increment()
    }

    mutating func dequeued() {
        guard waitingForSlot else { return }
        waitingForSlot = false
        load.queued.decrement()
    }

    mutating func sent() {
        guard !inFlight else { return }
        inFlight = true
        awaitingHead = true
        load.inFlight.increment()
        load.awaitingHead.increment()
    }

    mutating func headArrived() {
        guard awaitingHead else { return }
        awaitingHead = false
        load.awaitingHead.decrement()
    }

    func retried(_ reason: UpstreamLoad.RetryReason) { load.retries[reason]?.increment() }

    func fellBack() { load.fallbacks.increment() }

    mutating func ended() {
        headArrived()
        guard inFlight else { return }
        inFlight = false
        load.inFlight.decrement()
    }
}
