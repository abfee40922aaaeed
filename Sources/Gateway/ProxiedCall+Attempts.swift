import Ledger
import Metering
import NIOCore
import Policy
import Upstream

/// What happens between attempts of one call: its deadlines (one cancellable timer), retries
/// after a connect error or a 502/503/529, one more attempt when a pooled connection died under
/// the request, and the switch to a fallback model, all only while nothing has reached the client.
extension ProxiedCall {
    /// Whether a failed attempt may be repeated: retries left, and nothing sent to the client.
    var mayRetry: Bool { retriesHere < admission.provider.retries && !clientGone }

    /// The admission of the next usable fallback model, if any (the route's `fallbacks`, each
    /// admitted as the client's request with only its model replaced; one the plan or the price
    /// book refuses is skipped). The call runs under its reservation, which must bound it: for
    /// a fallback whose worst case is above what the call holds against its budgets, the
    /// reservation grows if the budgets can take it (this process's book), else the fallback is
    /// skipped (budgets shared on PostgreSQL). Kept in `pendingFallback` for `fallBack`.
    func prepareFallback() -> Bool {
        guard !clientGone else { return false }
        let policy = gateway.policies.policy
        while !fallbacksLeft.isEmpty {
            let model = fallbacksLeft.removeFirst()
            guard let peek = try? RequestPeek(body: request.body), let body = peek.withModel(model, body: request.body) else {
                continue
            }
            var candidate = request
            candidate.body = body
            let today = Day(unixSeconds: request.startedAt / 1_000_000)
            let admitted = Admit.admit(candidate, principal: admission.principal, policy: policy, today: today)
            if case .failure(let refused) = admitted {
                fallbacksSkipped.append((model, refused.refusal.message))
            }
            if case .success(let next) = admitted, next.provider.dialect == admission.provider.dialect {
                let paid = next.fallback(paidBy: admission.payer, promptEstimate: admission.promptEstimate)
                if let held = hold.quota?.heldAgainstBudgets {
                    let needed = paid.worstCase(on: request.endpoint)
                    if needed.cost > held.cost || held.tokens.map({ needed.tokens > $0 }) == true {
                        guard case .local(let reservation) = hold.quota,
                              case .success(let grown) = gateway.enforcer.quotas.grow(
                                  reservation, cost: needed.cost, tokens: needed.tokens, timeZone: hold.timeZone)
                        else {
                            fallbacksSkipped.append((model, "its worst case is over the payer's budget"))
                            continue
                        }
                        hold.quota = .local(grown)
                    }
                }
                pendingFallback = paid
                return true
            }
        }
        return false
    }

    /// The gateway is stopping between two attempts: end the call as interrupted.
    func endForShutdown() {
        transfer = nil
        phase = .awaitingHead
        upstreamEnd(.failure(.cancelled))
    }

    /// The provider gave up: move to the fallback model (its provider's slot, a fresh retry count).
    func fallBack(after reason: String) {
        if gateway.isStopping { return endForShutdown() }
        guard let next = pendingFallback else { return }
        pendingFallback = nil
        retriesMade.append(reason)
        load.fellBack()
        fallbacksTried.append(next.model)
        releaseSlot()
        load.ended()
        transfer = nil
        stopWatching()
        retriesHere = 0
        staleConnectionRetried = false
        admission = next
        meter = Self.meter(for: request.endpoint, through: next)
        load = gateway.metrics.upstreamLoad(provider: next.provider.name)
        acquireSlot()
    }

    /// Waits (jittered), then makes the next attempt, still holding the provider slot.
    /// `.staleConnection`: a pooled connection died under the request before the provider read
    /// it; tried again once, at once (curl has closed that connection, so the attempt goes on
    /// another). Not one of the provider's `retries` and no backoff: the provider is not in
    /// trouble, and curl does the same by itself on HTTP/1.1.
    func retry(after reason: String, _ kind: UpstreamLoad.RetryReason) {
        if gateway.isStopping { return endForShutdown() }
        retriesMade.append(reason)
        load.retried(kind)
        load.ended()
        transfer = nil
        stopWatching()
        if kind == .staleConnection {
            staleConnectionRetried = true
            return startTransfer()
        }
        retriesHere += 1
        phase = .backingOff
        let delay = RetryBackoff.delayMillis(attempt: retriesHere)
        connection.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(delay))) { [self] in
            guard phase == .backingOff else { return }  // the client left meanwhile
            if gateway.isStopping { return endForShutdown() }
            phase = .awaitingHead
            startTransfer()
        }
    }

    func stopWatching() {
        deadlineTimer?.cancel()
        deadlineTimer = nil
        watch = nil
    }

    /// Looks at the deadlines, then again when the next one could pass.
    func checkDeadlines() {
        guard let watch, phase == .awaitingHead || phase == .relaying else { return }
        switch watch.verdict(at: UnixTime.nowMicros()) {
        case .done:
            break
        case .expired(let expiry):
            expired = expiry
            transfer?.cancel()
        case .checkAt(let instant):
            let delay = TimeAmount.microseconds(max(instant - UnixTime.nowMicros(), 1_000))
            deadlineTimer?.cancel()
            deadlineTimer = connection.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in checkDeadlines() }
        }
    }
}
