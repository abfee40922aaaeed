import Ledger
import Metering
import NIOCore
import NIOHTTP1
import Policy

/// `Idempotency-Key` on the connection's side: claiming a key, waiting for the first call of
/// it, replaying a kept answer, and keeping or releasing the answer when the call ends.
extension ProxyHandler {
    /// Claims the request's idempotency key; false if the request was answered (or waits) instead.
    func claimIdempotency(_ token: String, request: CallRequest, principal: Principal) -> Bool {
        guard !token.isEmpty, token.utf8.count <= 255 else {
            refuseRepeat(request, principal: principal,
                         Refusal(.badRequest, "Idempotency-Key must be 1 to 255 characters.", field: "Idempotency-Key"))
            return false
        }
        let key = IdempotencyStore.Key(apiKeyID: principal.keyId, token: token, owner: principal.user)
        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        let waiter = IdempotencyStore.Waiter(loop: eventLoop) { claim in
            handler.value.resumeIdempotent(claim, request: request, principal: principal, key: key)
        }
        switch gateway.idempotency.claim(key, fingerprint: Self.idempotencyFingerprint(request),
                                         now: UnixTime.nowMicros(), waiter: waiter) {
        case .proceed:
            idempotent = (key, request.requestID)
            return true
        case .replay(let answer):
            replay(answer, request: request, principal: principal)
        case .wait:
            state = .responding(call: nil)
        case .conflict(let message):
            refuseRepeat(request, principal: principal, Refusal(.idempotencyConflict, message, field: "Idempotency-Key"))
        }
        return false
    }

    /// The first request of a key this one waited for has ended.
    func resumeIdempotent(_ claim: IdempotencyStore.Claim, request: CallRequest, principal: Principal,
                                  key: IdempotencyStore.Key) {
        guard clientConnected else { return }  // the client left while waiting
        switch claim {
        case .proceed: proxy(request)  // the first failed: claim the key anew and run the call
        case .replay(let answer): replay(answer, request: request, principal: principal)
        case .wait: break
        case .conflict(let message):
            refuseRepeat(request, principal: principal, Refusal(.idempotencyConflict, message, field: "Idempotency-Key"))
        }
    }

    /// A refusal of the key, recorded under the payer the call would have had.
    private func refuseRepeat(_ request: CallRequest, principal: Principal, _ refusal: Refusal) {
        let peek = try? RequestPeek(body: request.body)
        refuse(request.line, principal: principal, model: peek?.model, refusal,
               payer: Admit.payer(of: principal, request: request, peek: peek, plans: policy.plans),
               stream: peek?.stream ?? false, body: request.body)
    }

    /// Sends a kept answer again, recorded as `replayed` (no tokens, no cost).
    func replay(_ answer: IdempotencyStore.Answer, request: CallRequest, principal: Principal) {
        state = .responding(call: nil)
        let peek = try? RequestPeek(body: request.body)
        var entry = CallRecord.replayed(request.line, principal: principal,
                                        payer: Admit.payer(of: principal, request: request, peek: peek, plans: policy.plans),
                                        status: answer.status, original: answer.callID)
        if let peek {
            entry.modelRequested = peek.model
            entry.stream = peek.stream
        }
        entry.requestHash = RequestFingerprint.of(request.body)
        gateway.record(entry, on: eventLoop, connection: self) { [self] in
            var headers = HTTPHeaders()
            for (name, value) in answer.headers {
                headers.add(name: name, value: value)
            }
            headers.add(name: "content-length", value: String(answer.body.readableBytes))
            headers.add(name: "x-request-id", value: request.requestID)
            headers.add(name: "x-tokenctl-idempotent-replay", value: answer.callID)
            writeHead(status: answer.status, headers: headers)
            writeBody(answer.body)
            writeEnd()
        }
    }

    /// What makes a repeat the same request: its body and the end user it names (a service
    /// key's `x-tokenctl-user`), so that a replay is recorded under the first call's payer.
    static func idempotencyFingerprint(_ request: CallRequest) -> Int64 {
        // Besides the body, what changes the answer: the end user a service key calls for, and
        // the versions and betas sent upstream (interleaved thinking, a longer context).
        var context = request.declaredEndUser.map { "x-tokenctl-user: \($0)\n" } ?? ""
        for (name, value) in request.forwardedHeaders { context += "\(name): \(value)\n" }
        let body = RequestFingerprint.of(request.body)
        return context.isEmpty ? body : body ^ RequestFingerprint.of(Array(context.utf8))
    }

    /// Headers of one delivery, not of the answer: framing, the request id, limits and budget.
    static func perCallHeader(_ name: String) -> Bool {
        let lower = name.lowercased()
        return ["connection", "keep-alive", "content-length", "transfer-encoding", "x-request-id", "retry-after",
                "retry-after-ms"].contains(lower)
            || lower.hasPrefix("x-ratelimit-") || lower.hasPrefix("x-tokenctl-budget-")
    }

    /// The answer of a claimed request ended: keep it (2xx, whole) or release the key.
    func settleIdempotency(delivered: Bool) {
        guard let (key, requestID) = idempotent else { return }
        idempotent = nil
        let capture = answerCapture
        answerCapture = nil
        if delivered, let capture {
            gateway.idempotency.complete(key, IdempotencyStore.Answer(status: capture.status, headers: capture.headers,
                                                                      body: capture.body, callID: requestID),
                                         bytes: capture.body.readableBytes, now: UnixTime.nowMicros())
        } else {
            gateway.idempotency.release(key)
        }
    }
}
