import Ledger
import Metering
import NIOCore
import NIOHTTP1
import Upstream

/// How a call ends: its outcome and bill from what the meter saw and how the transfer ended,
/// its hold settled, its row recorded, and only then its last bytes delivered (invariant 1).
extension ProxiedCall {
    /// The call's last attempt ended (retries and fallbacks decided in `upstreamEnd`).
    func settle(_ result: Result<UpstreamTiming, UpstreamError>) {
        var headSent = phase == .relaying && errorPageHead == nil
        phase = .settling
        stopWatching()
        releaseSlot()
        load.ended()
        let (held, metered) = meter.finish()
        let (price, priceNote) = admission.settlementPrice(servedTier: metered.servedTier, servedGeo: metered.servedGeo,
                                                               usage: metered.usage)
        var entry = CallRecord.entry(for: request.line, admission: admission)
        entry.firstByteAt = firstByteAt
        entry.modelServed = metered.servedModel
        if let ttft = firstByteAt { entry.ttftMicros = ttft - request.startedAt }

        switch result {
        case .success(let timing):
            entry.upstreamMicros = timing.totalMicros
            entry.status = upstreamStatus
            CallRecord.settle(&entry, usage: metered.usage, price: price)
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
            // An error whose body is not a JSON document (an HTML page, labelled JSON or not):
            // answered as a JSON error of the caller's dialect.
            var page: Refusal?
            if errorPageHead != nil, !metered.sawTerminalEvent {
                page = errorPage(releasable(held))
            }
            if let page {
                entry.outcome = .upstreamError
                entry.errorMessage = page.message
            } else if upstreamStatus >= 400 {
                entry.outcome = .upstreamError
                entry.errorMessage = CredentialScrub.scrub(metered.providerErrorMessage,
                                                           secret: admission.provider.apiKey)
                noteRefusedStreamOptions(&entry)
            } else if metered.isStream && metered.streamFailed {
                entry.outcome = .upstreamError
                billFailedStream(&entry, metered: metered, price: price)
            } else if metered.isStream && !metered.sawTerminalEvent {
                entry.outcome = .upstreamError
                entry.errorMessage = "the provider's stream ended without its final event"
                // (Anthropic's input count may have come, its output count not.)
                CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate, kinds: admission.tokenKinds,
                                                price: price, promptAlone: billsPrompt)
            } else if !metered.isStream && !metered.sawTerminalEvent && !metered.bodyUnread {
                // Cut short (a JSON answer closed by the connection's end): billed from its text,
                // as a cut stream is. Not JSON at all (an HTML page from a wrong base_url): only
                // the text it holds, if any.
                entry.outcome = .upstreamError
                entry.errorMessage = "the provider's answer is not a complete JSON document"
                CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate, kinds: admission.tokenKinds,
                                                price: price, promptAlone: billsPrompt && answerIsJSON)
            } else if metered.bodyUnread {
                entry.outcome = .ok
                if metered.usage == nil {
                    CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate, kinds: admission.tokenKinds,
                                                    price: price, promptAlone: billsPrompt)
                    entry.errorMessage = "the answer passed \(ResponseMeter.bodyLimit) bytes and ended without a usage: relayed, its prompt estimated"
                }
            } else {
                entry.outcome = .ok
                if metered.usage == nil && billsPrompt {
                    // Missing, negative or absurd usage: bill the prompt estimate and the text sent.
                    CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate, kinds: admission.tokenKinds,
                                             price: price, promptAlone: true)
                    if entry.usageSource != .estimated {
                        entry.errorMessage = "the provider reported no usage; recorded without tokens or cost"
                    } else if metered.isStream && !admission.provider.asksStreamUsage {
                        // Not asked for its usage, as configured: estimated by design, not by fault.
                        entry.errorMessage = "tokens estimated from the request and the stream's text: provider '\(admission.provider.name)' is not asked for a stream's usage (ask_stream_usage: false)"
                    } else {
                        entry.errorMessage = "the provider reported no usable usage; tokens estimated from the request and the answer's text"
                    }
                } else if (metered.usage?.outputTokens ?? 0) == 0 {
                    // Text sent but no output count: an Anthropic stream that ended with an
                    // `error` event before `message_delta`, a provider whose `message_delta`
                    // carries none, or a usage without its output count. The text is the output.
                    CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate, kinds: admission.tokenKinds,
                                                    price: price)
                    if entry.usageSource == .estimated {
                        let providerSaid = CredentialScrub.scrub(metered.providerErrorMessage, secret: admission.provider.apiKey)
                        entry.errorMessage = (providerSaid.map { "\($0); " } ?? "")
                            + "the provider reported no output count; output tokens estimated from the text sent"
                    }
                }
            }
            Self.add(priceNote, to: &entry)
            // A stream that ended without its final event is cut, not ended: the client must not
            // take a truncated answer for a complete one.
            let truncated = metered.isStream && !metered.sawTerminalEvent && upstreamStatus < 400
            record(consume entry) { [self] in
                phase = .done
                if let page {
                    return connection.writeRefusal(page, dialect: request.endpoint.dialect, requestID: request.requestID)
                }
                if let head = errorPageHead { connection.writeHead(status: upstreamStatus, headers: head) }
                for part in releasable(held) { connection.writeBody(part) }
                if truncated { connection.abort() } else { connection.writeEnd() }
            }

        case .failure(let error):
            CallRecord.settle(&entry, usage: metered.usage, price: price)
            // The prompt alone is billed once this attempt's request went out and the provider
            // answered no error (relayed or discarded for a retry): not for a call ended between
            // attempts (no transfer), nor one cancelled while waiting for or making a connection.
            let attemptWentOut = transfer?.requestWentOut ?? false
            let providerWorkedOnIt = error.providerMayHaveRead && attemptWentOut && upstreamStatus < 400 && billsPrompt
            CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate, kinds: admission.tokenKinds,
                                     price: price, promptAlone: providerWorkedOnIt)
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
            if metered.isStream && metered.streamFailed { billFailedStream(&entry, metered: metered, price: price) }
            Self.add(priceNote, to: &entry)
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

    /// A 4xx naming `stream_options` that the gateway added (the client did not send it): the
    /// provider does not know the field. The row says so, and the log once per provider, with
    /// the setting that stops it.
    private func noteRefusedStreamOptions(_ entry: inout LedgerEntry) {
        guard admission.stripInjectedUsage, upstreamStatus < 500,
              let message = entry.errorMessage, message.contains("stream_options") else { return }
        let provider = admission.provider.name
        let fix = "tokenctl added stream_options to read the stream's usage; provider '\(provider)' refuses it: set ask_stream_usage: false for it in providers.yaml"
        entry.appendNote(fix)
        guard gateway.refusedStreamOptions.withLockedValue({ $0.insert(provider).inserted }) else { return }
        gateway.logger.warning("provider refused the stream_options the gateway adds; its streams fail until providers.yaml sets ask_stream_usage: false for it",
                               metadata: ["provider": "\(provider)", "status": "\(upstreamStatus)"])
    }

    /// The held bytes to send last: with an error answer held (for scrubbing, or as a page), all
    /// of it, scrubbed of the provider key.
    private func releasable(_ held: [ByteBuffer]) -> [ByteBuffer] {
        guard let hold = errorHold else { return held }
        errorHold = nil
        guard let key = admission.provider.apiKey else { return hold + held }
        return [CredentialScrub.scrub(hold + held, secret: key)]
    }

    /// The provider's error page (`body`, scrubbed) as a JSON error with its status, its text
    /// and those of its headers that say when to retry and what is left (the others described
    /// the page: its type, encoding, caching).
    private func errorPage(_ body: [ByteBuffer]) -> Refusal {
        let head = errorPageHead ?? HTTPHeaders()
        let contentType = head.first(name: "content-type")
        let encoding = head.first(name: "content-encoding").flatMap { $0.lowercased() == "identity" ? nil : $0 }
        let html = contentType?.lowercased().contains("html") ?? false
        // A page compressed unasked (the gateway asks for none) has no text to quote.
        let text = encoding != nil ? "" : ErrorPageText.of(body.flatMap { $0.readableBytesView }, html: html,
                                                           limit: Self.errorPageTextLimit)
        var message = "Provider '\(admission.provider.name)' answered HTTP \(upstreamStatus)"
        if let encoding {
            message += " (\(contentType ?? "no content type"), \(encoding)-encoded, not a JSON error)"
        } else if text.isEmpty {
            message += " with an empty body"
        } else {
            message += " (\(contentType ?? "no content type"), not a JSON error): \(text)"
        }
        let kept = head.filter { Self.keptFromErrorPage($0.name.lowercased()) }.map { ($0.name, $0.value) }
        return Refusal(.providerErrorPage(status: upstreamStatus), message, headers: kept)
    }

    /// The headers of an error page that still apply to the JSON error answered in its place.
    private static func keptFromErrorPage(_ name: String) -> Bool {
        ["retry-after", "retry-after-ms", "x-should-retry", "x-upstream-request-id"].contains(name)
            || ["x-ratelimit-", "anthropic-ratelimit-", "x-tokenctl-"].contains { name.hasPrefix($0) }
    }

    /// The note that a call was charged the standard price for a tier without one, after what
    /// the row already says; only on a row that costs something.
    private static func add(_ note: String?, to entry: inout LedgerEntry) {
        guard let note, entry.cost > .zero else { return }
        entry.appendNote(note)
    }

    /// Characters of an error page's text quoted in the message.
    static let errorPageTextLimit = 300

    /// A stream that carried the provider's error (then its end, or the connection's): the
    /// provider's message, and a failure's bill: if no text was sent, only the searches it showed
    /// finished (not even an input count Anthropic's `message_start` gave), else what it reported
    /// with the text sent.
    private func billFailedStream(_ entry: inout LedgerEntry, metered: MeterResult, price: ModelPrice?) {
        entry.errorMessage = CredentialScrub.scrub(metered.providerErrorMessage, secret: admission.provider.apiKey)
            ?? "the provider's stream ended with an error event"
        guard metered.estimatedOutputTokens > 0 else {
            CallRecord.settle(&entry, usage: nil, price: price)
            return CallRecord.billSearchesAlone(&entry, metered.searchesSeen, price: price)
        }
        CallRecord.settle(&entry, usage: metered.usage, price: price)
        CallRecord.estimateMissingUsage(&entry, metered: metered, promptEstimate: admission.promptEstimate, kinds: admission.tokenKinds,
                                        price: price)
    }

    /// Whether a call that ended without usage is billed its prompt estimate at all (a token
    /// count costs nothing).
    private var billsPrompt: Bool { request.endpoint != .countTokens }

    /// Settles the call's hold with what it really used, then records it.
    func record(_ entry: consuming LedgerEntry, then deliver: @escaping () -> Void) {
        entry.modelRequested = requestedModel
        // Fingerprinted once for every row of an admitted call (not for its start marker): here,
        // or as the body went.
        entry.requestHash = requestHash ?? RequestFingerprint.of(request.body)
        if !retriesMade.isEmpty {
            let count = retriesMade.count
            var note = "after \(count) \(count == 1 ? "retry" : "retries") (\(retriesMade.joined(separator: ", ")))"
            if let last = fallbacksTried.last { note += "; served by fallback model \(last)" }
            entry.appendNote(note)
        }
        for (model, reason) in fallbacksSkipped { entry.appendNote("fallback \(model) skipped: \(reason)") }
        let cost = entry.cost, tokens = entry.usage.totalTokens
        hold.settle(in: gateway.enforcer, cost: cost, tokens: tokens, startedAt: entry.startedAt, now: UnixTime.nowMicros())
        // The closures keep what the shared settlement needs, not a copy of the whole hold.
        let (quota, enforcer, loop) = (hold.quota, gateway.enforcer, connection.eventLoop)
        // A row that cannot commit does not make the provider's tokens free: the shared budgets
        // are charged at once rather than holding the reservation until it expires.
        // The row, kept with the call's start marker, is recorded at the next start.
        let journal = gateway.journal
        let chargeAnyway: @Sendable (LedgerEntry) -> Void = { row in
            journal.notRecorded(row)
            quota?.settleShared(in: enforcer, cost: cost, tokens: tokens, on: loop)
        }
        gateway.record(consume entry, on: loop, connection: connection, notRecorded: chargeAnyway) { [self] in
            // Recorded (committed, on PostgreSQL, where shared budgets live): a replica that dies
            // before this line is charged from the row.
            quota?.settleShared(in: gateway.enforcer, cost: cost, tokens: tokens, on: connection.eventLoop)
            gateway.journal.ended(id: callID)
            deliver()
        }
    }
}
