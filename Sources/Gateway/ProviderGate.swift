import NIOConcurrencyHelpers
import NIOCore
import Policy

/// The concurrency limit and bounded wait queue of one provider, shared by every event loop.
/// A call asks for a slot before its upstream transfer starts and gives it back when the
/// transfer ends; past the limit it waits (up to `queue_timeout_ms`, FIFO) or, with the queue
/// full, is refused at once with 503 + `retry-after`, so a slow provider never piles up callers.
final class ProviderGate: Sendable {
    /// What a waiting call is told, on its own event loop.
    enum Decision {
        case granted
        /// The queue was full, or the wait expired.
        case refused(Refusal)
    }

    private struct Waiter {
        let loop: any EventLoop
        let decide: @Sendable (Decision) -> Void
    }

    private struct State {
        var machine: StateMachine
        var waiters: [UInt64: Waiter] = [:]
        var nextID: UInt64 = 0
    }

    let provider: String
    private let state: NIOLockedValueBox<State>

    init(provider: String, limits: ProviderLimits) {
        self.provider = provider
        state = NIOLockedValueBox(State(machine: StateMachine(limits: limits)))
    }

    /// Calls waiting for a slot: the provider's queue backlog (for metrics).
    var waiting: Int { state.withLockedValue { $0.machine.waiting.count } }
    var inFlight: Int { state.withLockedValue { $0.machine.inFlight } }

    /// Asks for a slot; `decide` runs exactly once on `loop` (at once when granted or refused
    /// without waiting). Returns a ticket to `withdraw` with if the caller leaves while waiting.
    @discardableResult
    func acquire(on loop: any EventLoop, decide: @escaping @Sendable (Decision) -> Void) -> UInt64 {
        let (id, admission, limits) = state.withLockedValue { state -> (UInt64, StateMachine.Admission, ProviderLimits) in
            state.nextID += 1
            let id = state.nextID
            let admission = state.machine.acquire(id)
            if admission == .queued { state.waiters[id] = Waiter(loop: loop, decide: decide) }
            return (id, admission, state.machine.limits)
        }
        switch admission {
        case .granted:
            decide(Decision.granted)
        case .refused:
            decide(.refused(busy(limits, waited: false)))
        case .queued:
            loop.scheduleTask(in: .milliseconds(Int64(limits.queueTimeoutMs))) { [self] in
                let expired = state.withLockedValue { state -> Waiter? in
                    state.machine.withdraw(id) ? state.waiters.removeValue(forKey: id) : nil
                }
                expired?.decide(.refused(busy(limits, waited: true)))
            }
        }
        return id
    }

    /// The caller of a waiting `acquire` went away: forget it (its `decide` never runs).
    /// False if it was not waiting (already granted or refused).
    @discardableResult
    func withdraw(_ id: UInt64) -> Bool {
        state.withLockedValue { state in
            guard state.machine.withdraw(id) else { return false }
            state.waiters[id] = nil
            return true
        }
    }

    /// A granted call ended: its slot passes to the longest waiter, on that waiter's loop.
    func release() {
        let next = state.withLockedValue { state -> Waiter? in
            state.machine.release().flatMap { state.waiters.removeValue(forKey: $0) }
        }
        if let next { next.loop.execute { next.decide(Decision.granted) } }
    }

    /// New limits from a reloaded policy; waiters that now fit are let through.
    func update(_ limits: ProviderLimits) {
        let granted = state.withLockedValue { state -> [Waiter] in
            guard state.machine.limits != limits else { return [] }
            return state.machine.update(limits).compactMap { state.waiters.removeValue(forKey: $0) }
        }
        for waiter in granted { waiter.loop.execute { waiter.decide(Decision.granted) } }
    }

    /// The gateway is stopping: every waiter is refused (and recorded) instead of waiting on.
    func refuseWaiters(_ refusal: Refusal) {
        let waiters = state.withLockedValue { state -> [Waiter] in
            for id in state.waiters.keys { _ = state.machine.withdraw(id) }
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.loop.execute { waiter.decide(.refused(refusal)) } }
    }

    private func busy(_ limits: ProviderLimits, waited: Bool) -> Refusal {
        let limit = limits.maxConcurrent ?? 0
        let why = waited
            ? "waited \(limits.queueTimeoutMs) ms for one of its \(limit) slots"
            : "all \(limit) slots are taken and \(limits.maxQueue) calls are already waiting"
        // A second is a fair first retry: slots free as calls end, usually within seconds.
        return Refusal(.providerBusy, "Provider '\(provider)' is busy: \(why). Retry shortly.",
                       headers: [("retry-after", "1")])
    }
}

/// One gate per configured provider, kept across policy reloads (limits are updated in place,
/// so calls in flight keep their slots).
final class ProviderGates: Sendable {
    private let gates = NIOLockedValueBox<[String: ProviderGate]>([:])

    func gate(for provider: Provider) -> ProviderGate {
        let (gate, created) = gates.withLockedValue { gates -> (ProviderGate, Bool) in
            if let gate = gates[provider.name] { return (gate, false) }
            let gate = ProviderGate(provider: provider.name, limits: provider.limits)
            gates[provider.name] = gate
            return (gate, true)
        }
        if !created { gate.update(provider.limits) }
        return gate
    }

    /// Refuses every waiting call (at shutdown).
    func refuseWaiters(_ refusal: Refusal) {
        for gate in gates.withLockedValue({ Array($0.values) }) { gate.refuseWaiters(refusal) }
    }

    /// Waiting calls per provider (the upstream queue backlog).
    var backlog: [String: Int] {
        gates.withLockedValue { $0.mapValues(\.waiting) }
    }
}
