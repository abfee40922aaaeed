import Prometheus

/// One provider's load, as gauges:
///
/// - `tokenctl_upstream_in_flight{provider}`: calls forwarded to it and not yet ended.
/// - `tokenctl_upstream_backlog{provider,stage}`: calls waiting on it. Stage `awaiting_head`:
///   sent, no response head yet (a slow or overloaded provider shows here first); stage
///   `queued`: admitted, waiting for one of the provider's `max_concurrent` slots. `sum by
///   (provider)` is the whole backlog.
final class UpstreamLoad: Sendable {
    let inFlight: Gauge
    let awaitingHead: Gauge
    let queued: Gauge

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

    mutating func ended() {
        headArrived()
        guard inFlight else { return }
        inFlight = false
        load.inFlight.decrement()
    }
}
