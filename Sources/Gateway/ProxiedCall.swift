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
    private(set) var requestHash: Int64?
    /// What the call was admitted as; replaced when it falls back to another model.
    var admission: Admission
    /// The model the client asked for (the row keeps it when a fallback serves the call).
    let requestedModel: String
    /// Fallback models not tried yet, and the ones tried (for the row).
    var fallbacksLeft: [String]
    var fallbacksTried: [String] = []
    /// Fallbacks passed over, each with why: admission refused it (the plan, the price book), or
    /// its worst case did not fit the reservation (the row says so).
    var fallbacksSkipped: [(model: String, reason: String)] = []
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
    /// The head of an error answer, held with its body until the end: the client gets them as
    /// they came if the body is a JSON document, else (a load balancer's HTML page, whatever its
    /// `content-type` says) a JSON error in its dialect instead.
    var errorPageHead: HTTPHeaders?
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
        self.meter = Self.meter(for: request.endpoint, through: admission)
        self.load = gateway.metrics.upstreamLoad(provider: admission.provider.name)
        self.requestedModel = admission.model
        self.fallbacksLeft = gateway.policies.policy.route(forModel: admission.model)?.fallbacks ?? []
    }

    /// A new attempt's meter: it strips the usage chunk the gateway asked for, and scrubs the
    /// provider's key from the stream's error events.
    static func meter(for endpoint: Endpoint, through admission: Admission) -> ResponseMeter {
        ResponseMeter(endpoint: endpoint, stripInjectedUsage: admission.stripInjectedUsage,
                      providerKey: admission.provider.apiKey)
    }

    /// Takes a slot at the provider (maybe after waiting in its queue), then starts the transfer.
    func start() {
        gateway.journal.started(CallRecord.entry(for: request.line, admission: admission))
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
            meter = Self.meter(for: request.endpoint, through: admission)
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
            var entry = CallRecord.entry(for: request.line, admission: admission)
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
        if head.status >= 400 { errorHold = [] }
        var headers = HTTPHeaders()
        // The provider's headers, ours and the limit headers, without regrowing on the way.
        headers.reserveCapacity(head.headers.count + 12)
        for (name, value) in head.headers {
            if ProxiedCall.hopByHop.contains(name) { continue }
            // A stream (events dropped or scrubbed) or a scrubbed error body may change length:
            // it goes chunked.
            if admission.stripInjectedUsage || meter.isStreaming || errorHold != nil,
               name.utf8.equals(ignoringASCIICase: "content-length".utf8) {
                continue
            }
            if name.utf8.equals(ignoringASCIICase: "x-request-id".utf8) {
                headers.add(name: "x-upstream-request-id", value: CredentialScrub.header(value, secret: admission.provider.apiKey))
                continue
            }
            headers.add(name: name, value: CredentialScrub.header(value, secret: admission.provider.apiKey))
        }
        headers.add(name: "x-request-id", value: request.requestID)
        for (name, value) in LimitHeaders.rate(hold.rate) { headers.replaceOrAdd(name: name, value: value) }
        if !hold.payer.plan.budgets.isEmpty {
            // What was left when this call started: its own worst-case hold is not yet spending.
            let standings = hold.budgetStandings(in: gateway.enforcer, now: UnixTime.nowMicros())
            for (name, value) in LimitHeaders.budget(standings) { headers.add(name: name, value: value) }
        }
        if head.status >= 400 {
            errorPageHead = headers
            return
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
        settle(result)
    }

    /// From the head on, nothing retries the call or falls back: the row needs only the body's
    /// fingerprint. (The body sent upstream stays with the transfer, which curl reads it from.)
    private func releaseRequestBody() {
        guard requestHash == nil else { return }
        requestHash = RequestFingerprint.of(request.body)
        request.body = ByteBuffer()
    }

    private static let hopByHop = HeaderNameSet([
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
        "proxy-authenticate", "proxy-authorization",
        // The gateway's provider account is nobody else's business.
        "set-cookie", "openai-organization", "openai-project", "anthropic-organization-id",
        // Which pages may read the answer is the gateway's to say (`cors`), not the provider's.
        "access-control-allow-origin", "access-control-allow-credentials", "access-control-expose-headers",
        "access-control-allow-methods", "access-control-allow-headers", "access-control-max-age",
    ])
}
