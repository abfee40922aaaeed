import Ledger
import Logging
import Metering
import NIOCore
import NIOHTTP1
import Policy
import Upstream

/// One admitted call in flight: relays the provider's answer to the client as it arrives,
/// meters it, and records it. Lives on its connection's event loop; every method runs there.
///
/// The final bytes (the terminal SSE event, or the last chunk of a body) are held back by the
/// `ResponseMeter` and written only after the call's ledger row has committed (invariant 1).
final class ProxiedCall: UpstreamResponseHandler {
    /// The client's request. Its body goes once the answer is relayed, when nothing can send the
    /// call again (`releaseRequestBody`): a stream may last minutes, and a prompt be 100 KB.
    private(set) var request: CallRequest
    /// The body's fingerprint for the row, taken as the body went.
    private var requestHash: Int64?
    /// What the call was admitted as; replaced when it falls back to another model.
    var admission: Admission
    /// The model the client asked for (the row keeps it when a fallback serves the call).
    let requestedModel: String
    /// Fallback models not tried yet, and the ones tried (for the row).
    var fallbacksLeft: [String]
    var fallbacksTried: [String] = []
    /// Fallbacks passed over because their worst case did not fit the reservation (the row says so).
    var fallbacksOverBudget: [String] = []
    /// The fallback's admission, prepared when the current provider gave up.
    var pendingFallback: Admission?
    /// Retries made at the current provider.
    var retriesHere = 0
    /// An attempt was repeated because its pooled connection died under it (once per provider).
    var staleConnectionRetried = false
    /// What admission took from the shared limits; settled exactly once, when the call ends.
    /// Grows (a pricier fallback) but is settled exactly once, when the call ends.
    var hold: Hold
    let gateway: GatewayContext
    let connection: ClientConnection
    var meter: ResponseMeter
    var transfer: UpstreamTransfer?
    var phase: Phase = .awaitingHead
    var upstreamStatus = 0
    /// The attempt's answer says it is JSON (`content-type`): one cut short is the provider's
    /// answer, billed; a page of another type is not.
    var answerIsJSON = false
    var firstByteAt: Int64?
    var clientPaused = false
    /// The client went away (as opposed to the gateway cancelling the call, e.g. at shutdown).
    var clientGone = false
    /// The provider answered 401 to the gateway's own key: that answer is not the caller's
    /// business (and may quote part of the key), so it is replaced by a 502 of the gateway's own.
    var providerRejectedKey = false
    /// An error answer held whole until its end, so the provider key can be scrubbed from it
    /// (`CredentialScrub`); nil while relaying normally.
    var errorHold: [ByteBuffer]?
    var errorHoldBytes = 0
    var errorTooLarge = false
    /// First-byte and idle deadlines (nil when the provider sets neither); `expired` says which
    /// one cancelled the transfer, so its end is recorded as a timeout.
    var watch: UpstreamWatch?
    var expired: UpstreamWatch.Expiry?
    /// The one pending deadline check; cancelled when the attempt or the call ends, so a
    /// finished call is not kept alive by its timer.
    var deadlineTimer: Scheduled<Void>?
    /// This call's share of the provider's in-flight and backlog gauges.
    var load: UpstreamCallLoad

    /// The call's slot at its provider (`max_concurrent`): waited for, then held until the transfer ends.
    var slot: Slot = .none

    /// The id of the call's row, made with its request line, so its shared quota hold, its start
    /// marker (`InFlightJournal`) and its row name the same call.
    var callID: String { request.callID }

    /// Retries made so far, and why (each a status or "connect error"), for the row.
    var retriesMade: [String] = []

    /// `discardingAttempt`: the provider answered 502/503/529 and the call will be retried; the
    /// rest of that answer is read and dropped. `backingOff`: waiting before the next attempt.
    enum Phase { case waitingForSlot, awaitingHead, discardingAttempt, backingOff, relaying, settling, done }
    enum Slot {
        case none
        case waiting(ticket: UInt64, gate: ProviderGate)
        case held(ProviderGate)
    }

    init(request: CallRequest, admission: Admission, hold: Hold, gateway: GatewayContext,
         connection: ClientConnection) {
        self.request = request
        self.admission = admission
        self.hold = hold
        self.gateway = gateway
        self.connection = connection
        self.meter = ResponseMeter(endpoint: request.endpoint, stripInjectedUsage: admission.stripInjectedUsage)
        self.load = gateway.metrics.upstreamLoad(provider: admission.provider.name)
        self.requestedModel = admission.model
        self.fallbacksLeft = gateway.policies.policy.route(forModel: admission.model)?.fallbacks ?? []
    }

    /// Takes a slot at the provider (maybe after waiting in its queue), then starts the transfer.
    func start() {
        gateway.journal.started(CallRecord.entry(for: request, admission: admission))
        acquireSlot()
    }

    func acquireSlot() {
        let gate = gateway.providerGates.gate(for: admission.provider)
        let call = NIOLoopBound(self, eventLoop: connection.eventLoop)
        phase = .waitingForSlot
        let ticket = gate.acquire(on: connection.eventLoop) { decision in
            call.value.slotDecided(decision, gate: gate)
        }
        // Not decided at once: the call waits in the provider's queue.
        if case .none = slot, phase == .waitingForSlot {
            slot = .waiting(ticket: ticket, gate: gate)
            load.queued()
        }
    }

    private func slotDecided(_ decision: ProviderGate.Decision, gate: ProviderGate) {
        load.dequeued()
        guard phase == .waitingForSlot else {
            // The client left while the slot was being handed over: pass it on.
            if case .granted = decision { gate.release() }
            return
        }
        switch decision {
        case .granted:
            slot = .held(gate)
            phase = .awaitingHead
            startTransfer()
        case .refused(let refusal):
            slot = .none
            phase = .settling
            let entry = CallRecord.refused(request.line, principal: admission.principal, payer: admission.payer,
                                           model: admission.model, provider: admission.provider, refusal: refusal,
                                           admission: admission)
            record(entry) { [self] in
                phase = .done
                connection.writeRefusal(refusal, dialect: request.endpoint.dialect, requestID: request.requestID)
            }
        }
    }

    func releaseSlot() {
        if case .held(let gate) = slot { gate.release() }
        slot = .none
    }

    func startTransfer() {
        let upstreamRequest = Forward.upstreamRequest(for: request, admission: admission)
        if !retriesMade.isEmpty {
            meter = ResponseMeter(endpoint: request.endpoint, stripInjectedUsage: admission.stripInjectedUsage)
        }
        load.sent()
        upstreamStatus = 0  // this attempt's, once its head comes
        transfer = gateway.upstream.start(upstreamRequest, on: connection.eventLoop, handler: self)
        stopWatching()
        let provider = admission.provider
        let watch = UpstreamWatch(firstByteMs: provider.firstByteTimeoutMs, idleMs: provider.idleTimeoutMs,
                                  sentAt: UnixTime.nowMicros())
        if watch.isActive {
            self.watch = watch
            checkDeadlines()
        }
    }

    // MARK: client side

    /// The client closed its connection: abort the upstream transfer; the end is recorded
    /// as `client_cancelled` with whatever usage was seen.
    func clientDisconnected() {
        if phase == .waitingForSlot {
            // Gone before any upstream call: nothing was used; the row says so.
            if case .waiting(let ticket, let gate) = slot { gate.withdraw(ticket) }
            load.dequeued()
            slot = .none
            clientGone = true
            phase = .settling
            var entry = CallRecord.entry(for: request, admission: admission)
            CallRecord.settle(&entry, usage: nil, price: admission.price)
            entry.outcome = .clientCancelled
            entry.status = 499
            entry.errorMessage = "client closed the connection while the call waited for a provider slot"
            record(entry) { [self] in
                phase = .done
                connection.abort()  // ends the request on the handler's side (idempotency claim, state)
            }
            return
        }
        if phase == .backingOff {
            // Between attempts: no transfer to cancel; the call ends here.
            clientGone = true
            phase = .awaitingHead
            upstreamEnd(.failure(.cancelled))
            return
        }
        guard phase == .awaitingHead || phase == .relaying || phase == .discardingAttempt else { return }
        if phase == .discardingAttempt { phase = .awaitingHead }
        clientGone = true
        transfer?.cancel()
    }

    func clientWritabilityChanged(isWritable: Bool) {
        if !isWritable, !clientPaused, phase == .relaying {
            clientPaused = true
            watch?.paused(at: UnixTime.nowMicros())
            transfer?.pause()
        } else if isWritable, clientPaused {
            clientPaused = false
            watch?.resumed(at: UnixTime.nowMicros())
            transfer?.resume()
        }
    }

    // MARK: UpstreamResponseHandler

    func upstreamHead(_ head: UpstreamHead) {
        guard phase == .awaitingHead else { return }
        if RetryBackoff.retryableStatuses.contains(head.status), mayRetry || prepareFallback() {
            // Nothing of it goes to the client: read it to its end, then try again (here, or
            // with the fallback model).
            phase = .discardingAttempt
            upstreamStatus = head.status
            return
        }
        phase = .relaying
        releaseRequestBody()
        load.headArrived()
        watch?.head(at: UnixTime.nowMicros())
        // Without a first-byte deadline no timer runs yet: the idle watch starts with the head.
        if watch?.firstByteMicros == nil { checkDeadlines() }
        upstreamStatus = head.status
        let contentType = head.first("content-type")
        answerIsJSON = ResponseMeter.isJSON(contentType)
        meter.head(status: head.status, contentType: contentType)
        // A 401 is about the gateway's own key and may quote it: not relayed. A 403 (a model or
        // region the key may not use, a moderation block) is the provider's answer to this call:
        // relayed like other errors, scrubbed of the key.
        if head.status == 401 {
            providerRejectedKey = true
            return
        }
        if head.status >= 400, admission.provider.apiKey != nil { errorHold = [] }
        var headers = HTTPHeaders()
        // The provider's headers, ours and the limit headers, without regrowing on the way.
        headers.reserveCapacity(head.headers.count + 12)
        for (name, value) in head.headers {
            if ProxiedCall.hopByHop.contains(name) { continue }
            // A scrubbed error body may change length: it goes chunked.
            if admission.stripInjectedUsage || errorHold != nil, name.utf8.equals(ignoringASCIICase: "content-length".utf8) {
                continue
            }
            if name.utf8.equals(ignoringASCIICase: "x-request-id".utf8) {
                headers.add(name: "x-upstream-request-id", value: value)
                continue
            }
            headers.add(name: name, value: value)
        }
        headers.add(name: "x-request-id", value: request.requestID)
        for (name, value) in LimitHeaders.rate(hold.rate) { headers.replaceOrAdd(name: name, value: value) }
        if !hold.payer.plan.budgets.isEmpty {
            // What was left when this call started: its own worst-case hold is not yet spending.
            let standings = hold.budgetStandings(in: gateway.enforcer, now: UnixTime.nowMicros())
            for (name, value) in LimitHeaders.budget(standings) { headers.add(name: name, value: value) }
        }
        connection.writeHead(status: head.status, headers: headers)
    }

    func upstreamBody(_ chunk: ByteBuffer, endFollows: Bool) {
        guard phase == .relaying else { return }
        let now = UnixTime.nowMicros()
        if firstByteAt == nil { firstByteAt = now }
        watch?.bytes(at: now)
        let parts = meter.consume(chunk)
        if providerRejectedKey { return }
        if errorHold != nil {
            errorHold! += parts
            errorHoldBytes += parts.reduce(0) { $0 + $1.readableBytes }
            // Nobody needs an error page over a MiB; relaying it unscrubbed is not an option.
            if errorHoldBytes > CredentialScrub.holdLimit {
                errorTooLarge = true
                transfer?.cancel()
            }
            return
        }
        for part in parts {
            connection.writeBody(part)
        }
        // With the end in the same delivery, the held last bytes follow once the row commits and
        // go out with these in one flush (`writeEnd`, or `abort`, which flushes before closing).
        if !endFollows { connection.flush() }
    }

    func upstreamEnd(_ result: Result<UpstreamTiming, UpstreamError>) {
        if phase == .discardingAttempt {
            if case .failure(.cancelled) = result {
                phase = .awaitingHead  // cancelled (client gone, shutdown): the call ends here
            } else {
                let reason = "\(upstreamStatus) from \(admission.provider.name)"
                return pendingFallback != nil && !clientGone ? fallBack(after: reason) : retry(after: reason, .status)
            }
        }
        if phase == .awaitingHead, case .failure(.staleConnection) = result, !staleConnectionRetried, !clientGone {
            return retry(after: "connection to \(admission.provider.name) closed before it answered", .staleConnection)
        }
        if phase == .awaitingHead, case .failure(.connect) = result {
            let reason = "connect error at \(admission.provider.name)"
            if mayRetry { return retry(after: reason, .connect) }
            if prepareFallback() { return fallBack(after: reason) }
        }
        // A certificate that did not verify will not verify on a retry; a fallback's may.
        if phase == .awaitingHead, case .failure(.certificate) = result, prepareFallback() {
            return fallBack(after: "certificate not verified at \(admission.provider.name)")
        }
        guard phase == .awaitingHead || phase == .relaying else { return }
        var headSent = phase == .relaying
        phase = .settling
        stopWatching()
        releaseSlot()
        load.ended()
        let (held, metered) = meter.finish()
        var entry = CallRecord.entry(for: request, admission: admission)
        entry.firstByteAt = firstByteAt
        entry.modelServed = metered.servedModel
        if let ttft = firstByteAt { entry.ttftMicros = ttft - request.startedAt }

        switch result {
        case .success(let timing):
            entry.upstreamMicros = timing.totalMicros
            entry.status = upstreamStatus
            CallRecord.settle(&entry, usage: metered.usage, price: admission.price)
            if providerRejectedKey {
                let refusal = Refusal(.providerAuthFailed,
                    "Provider '\(admission.provider.name)' rejected the gateway's API key (HTTP \(upstreamStatus)); the gateway's administrator must check \(admission.provider.apiKeyEnv ?? "its key").")
                entry.status = refusal.status
                entry.outcome = refusal.outcome
                entry.errorMessage = refusal.message
                record(entry) { [self] in
                    phase = .done
                    connection.writeRefusal(refusal, dialect: request.endpoint.dialect, requestID: request.requestID)
                }
                return
            }
            if upstreamStatus >= 400 {
                entry.outcome = .upstreamError
                entry.errorMessage = CredentialScrub.scrub(metered.providerErrorMessage,
                                                           secret: admission.provider.apiKey)
            } else if metered.isStream && metered.streamFailed {
                entry.outcome = .upstreamError
                billFailedStream(&entry, metered: metered)
            } else if metered.isStream && !metered.sawTerminalEvent {
                entry.outcome = .upstreamError
                entry.errorMessage = "the provider's stream ended without its final event"
                // (Anthropic's input count may have come, its output count not.)
                CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate,
                                                price: admission.price, promptAlone: billsPrompt)
            } else if !metered.isStream && !metered.sawTerminalEvent && !metered.bodyUnread {
                // Cut short (a JSON answer closed by the connection's end): billed from its text,
                // as a cut stream is. Not JSON at all (an HTML page from a wrong base_url): only
                // the text it holds, if any.
                entry.outcome = .upstreamError
                entry.errorMessage = "the provider's answer is not a complete JSON document"
                CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate,
                                                price: admission.price, promptAlone: billsPrompt && answerIsJSON)
            } else if metered.bodyUnread {
                entry.outcome = .ok
                if metered.usage == nil {
                    CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate,
                                                    price: admission.price, promptAlone: billsPrompt)
                    entry.errorMessage = "the answer passed \(ResponseMeter.bodyLimit) bytes and ended without a usage: relayed, its prompt estimated"
                }
            } else {
                entry.outcome = .ok
                if metered.usage == nil && billsPrompt {
                    // Missing, negative or absurd usage: bill the prompt estimate and the text sent.
                    CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate,
                                             price: admission.price, promptAlone: true)
                    entry.errorMessage = entry.usageSource == .estimated
                        ? "the provider reported no usable usage; tokens estimated from the request and the answer's text"
                        : "the provider reported no usage; recorded without tokens or cost"
                } else if metered.isStream && (metered.usage?.outputTokens ?? 0) == 0 {
                    // Text streamed but no output count: an Anthropic stream that ended with an
                    // `error` event before `message_delta`, or a provider whose `message_delta`
                    // carries none. The text sent is the output.
                    CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate,
                                                    price: admission.price)
                    if entry.usageSource == .estimated {
                        let providerSaid = CredentialScrub.scrub(metered.providerErrorMessage, secret: admission.provider.apiKey)
                        entry.errorMessage = (providerSaid.map { "\($0); " } ?? "")
                            + "the stream reported no output count; output tokens estimated from the text sent"
                    }
                }
            }
            // A stream that ended without its final event is cut, not ended: the client must not
            // take a truncated answer for a complete one.
            let truncated = metered.isStream && !metered.sawTerminalEvent && upstreamStatus < 400
            record(entry) { [self] in
                for part in releasable(held) { connection.writeBody(part) }
                if truncated { connection.abort() } else { connection.writeEnd() }
                phase = .done
            }

        case .failure(let error):
            CallRecord.settle(&entry, usage: metered.usage, price: admission.price)
            // The prompt alone is billed once this attempt's request went out and the provider
            // answered no error (relayed or discarded for a retry): not for a call ended between
            // attempts (no transfer), nor one cancelled while waiting for or making a connection.
            let attemptWentOut = transfer?.requestWentOut ?? false
            let providerWorkedOnIt = error.providerMayHaveRead && attemptWentOut && upstreamStatus < 400 && billsPrompt
            CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate,
                                     price: admission.price, promptAlone: providerWorkedOnIt)
            let refusal: Refusal?
            if providerRejectedKey { headSent = false }  // nothing of that answer reached the client
            switch error {
            case .cancelled where errorTooLarge:
                refusal = Refusal(.upstreamUnreachable,
                                  "The provider's error answer passed \(CredentialScrub.holdLimit) bytes and was cut off.")
            case .cancelled where expired != nil:
                refusal = Refusal(.upstreamTimeout, "The provider did not answer in time: \(expired!.message).")
            case .cancelled where clientGone:
                entry.outcome = .clientCancelled
                entry.status = 499
                entry.errorMessage = "client closed the connection"
                refusal = nil
            case .cancelled:
                refusal = Refusal(.shuttingDown, "The gateway stopped while the call was in flight; retry it.")
            case .timeout(let message, _):
                refusal = Refusal(.upstreamTimeout, "The provider did not answer in time: \(message)")
            case .connect(let message):
                refusal = Refusal(.upstreamUnreachable, "Could not reach provider '\(admission.provider.name)': \(message)")
            case .certificate(let message):
                refusal = Refusal(.upstreamUnreachable,
                                  "The TLS certificate of provider '\(admission.provider.name)' could not be verified: \(message)")
            case .transport(_, let message), .staleConnection(let message):
                refusal = Refusal(.upstreamUnreachable, "The connection to provider '\(admission.provider.name)' failed: \(message)")
            }
            if let refusal {
                // Once the client has a head, a failure is the provider's answer breaking off
                // (a deadline stays a timeout either way).
                entry.outcome = headSent && refusal.kind != .upstreamTimeout && refusal.kind != .shuttingDown
                    ? .upstreamError : refusal.outcome
                entry.status = headSent ? upstreamStatus : refusal.status
                entry.errorMessage = refusal.message
            }
            // The provider's error in the stream, then the connection cut: the error is the story.
            if metered.isStream && metered.streamFailed { billFailedStream(&entry, metered: metered) }
            record(entry) { [self] in
                phase = .done
                if headSent || refusal == nil {
                    // The client already has a head (or is gone): pass on what arrived, then cut
                    // the connection so a truncated answer is never mistaken for a complete one.
                    for part in releasable(held) { connection.writeBody(part) }
                    connection.abort()
                } else if let refusal {
                    connection.writeRefusal(refusal, dialect: request.endpoint.dialect, requestID: request.requestID)
                }
            }
        }
    }

    /// The held bytes to send last: with an error answer held for scrubbing, all of it, scrubbed.
    private func releasable(_ held: [ByteBuffer]) -> [ByteBuffer] {
        guard let hold = errorHold, let key = admission.provider.apiKey else { return held }
        errorHold = nil
        return [CredentialScrub.scrub(hold + held, secret: key)]
    }

    /// From the head on, nothing retries the call or falls back: the row needs only the body's
    /// fingerprint. (The body sent upstream stays with the transfer, which curl reads it from.)
    private func releaseRequestBody() {
        guard requestHash == nil else { return }
        requestHash = RequestFingerprint.of(request.body)
        request.body = ByteBuffer()
    }

    /// A stream that carried the provider's error (then its end, or the connection's): the
    /// provider's message, and a failure's bill: nothing if no text was sent (even an input count
    /// Anthropic's `message_start` gave), else what it reported with the text sent.
    private func billFailedStream(_ entry: inout LedgerEntry, metered: MeterResult) {
        entry.errorMessage = CredentialScrub.scrub(metered.providerErrorMessage, secret: admission.provider.apiKey)
            ?? "the provider's stream ended with an error event"
        guard metered.estimatedOutputTokens > 0 else {
            return CallRecord.settle(&entry, usage: nil, price: admission.price)
        }
        CallRecord.settle(&entry, usage: metered.usage, price: admission.price)
        CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate,
                                        price: admission.price)
    }

    /// Whether a call that ended without usage is billed its prompt estimate at all (a token
    /// count costs nothing).
    private var billsPrompt: Bool { request.endpoint != .countTokens }

    /// Settles the call's hold with what it really used, then records it.
    private func record(_ entry: LedgerEntry, then deliver: @escaping () -> Void) {
        var entry = entry
        entry.modelRequested = requestedModel
        // Fingerprinted once for every row of an admitted call (not for its start marker): here,
        // or as the body went.
        entry.requestHash = requestHash ?? RequestFingerprint.of(request.body)
        if !retriesMade.isEmpty {
            let count = retriesMade.count
            var note = "after \(count) \(count == 1 ? "retry" : "retries") (\(retriesMade.joined(separator: ", ")))"
            if let last = fallbacksTried.last { note += "; served by fallback model \(last)" }
            entry.errorMessage = entry.errorMessage.map { "\($0); \(note)" } ?? note
        }
        if !fallbacksOverBudget.isEmpty {
            let note = "fallback \(fallbacksOverBudget.joined(separator: ", ")) skipped: its worst case is over the payer's budget"
            entry.errorMessage = entry.errorMessage.map { "\($0); \(note)" } ?? note
        }
        let cost = entry.cost, tokens = entry.usage.totalTokens
        hold.settle(in: gateway.enforcer, cost: cost, tokens: tokens, startedAt: entry.startedAt, now: UnixTime.nowMicros())
        let (hold, enforcer, loop) = (self.hold, gateway.enforcer, connection.eventLoop)
        // A row that cannot commit does not make the provider's tokens free: the shared budgets
        // are charged at once rather than holding the reservation until it expires.
        // The row, kept with the call's start marker, is recorded at the next start.
        let journal = gateway.journal
        let chargeAnyway: @Sendable (LedgerEntry) -> Void = { row in
            journal.notRecorded(row)
            hold.settleShared(in: enforcer, cost: cost, tokens: tokens, on: loop)
        }
        gateway.record(entry, on: loop, connection: connection, notRecorded: chargeAnyway) { [self] in
            // Recorded (committed, on PostgreSQL, where shared budgets live): a replica that dies
            // before this line is charged from the row.
            hold.settleShared(in: gateway.enforcer, cost: cost, tokens: tokens, on: connection.eventLoop)
            gateway.journal.ended(id: callID)
            deliver()
        }
    }

    private static let hopByHop = HeaderNameSet([
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-authenticate", "proxy-authorization",
        // The gateway's provider account is nobody else's business.
        "set-cookie", "openai-organization", "openai-project", "anthropic-organization-id",
    ])
}
