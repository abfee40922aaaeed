import Foundation
import Ledger
import Metering
import NIOCore
import NIOHTTP1
import Policy
import PostgresLedger

/// Routing on the connection's side: a complete request to the admin API, a refusal, or the
/// proxied call (identify → admit → enforce, locally or on the shared budgets).
extension ProxyHandler {
    func dispatch(head: HTTPRequestHead, body: ByteBuffer, startedAt: Int64) {
        let line = line(for: head, startedAt: startedAt)
        let path = Self.path(of: head.uri)

        // A browser asking whether a page of an allowed origin may make this request: not a call.
        if head.method == .OPTIONS, allowedOrigin != nil,
           head.headers.contains(name: "access-control-request-method") {
            var headers = HTTPHeaders(CrossOrigin.preflightHeaders(requested: head.headers))
            headers.add(name: "content-length", value: "0")
            writeHead(status: 204, headers: headers)
            return writeEnd()
        }

        if head.method == .POST, let endpoint = Endpoint(proxyPath: path) {
            // Fail closed: a call that could not be recorded is not made. Answered at once and
            // not recorded (the ledger is what is failing); counted in the metrics.
            if gateway.ledgerHealth.isFailing {
                let refusal = gateway.ledgerHealth.refusal
                gateway.metrics.recordUnrecordedRefusal(reason: "ledger_unavailable")
                return writeRefusal(refusal, dialect: endpoint.dialect, requestID: line.requestID)
            }
            var forwarded: [(String, String)] = []
            for (name, value) in head.headers where Forward.forwardedClientHeaders.contains(name) {
                forwarded.append((name.lowercased(), value))
            }
            let request = CallRequest(endpoint: endpoint, line: line,
                                      presentedSecret: Self.secret(in: head.headers), caller: caller,
                                      forwardedHeaders: forwarded,
                                      declaredEndUser: head.headers.first(name: "x-tokenctl-user"),
                                      idempotencyKey: head.headers.first(name: "idempotency-key"), body: body)
            proxy(request)
            return
        }
        // HEAD on the gateway's own pages is their GET without the body.
        headOnly = head.method == .HEAD && Self.readOnlyPaths.contains(path)
        switch (headOnly ? .GET : head.method, path) {
        case (.GET, "/healthz"):
            // The policy in force and failed reloads since start (a refused change keeps the old one).
            // 503 while the ledger fails, so a load balancer sends traffic to another replica.
            let failed = gateway.policies.failedReloads
            let ledger = gateway.ledgerHealth.current
            let ledgerJSON = ledger.map { #"{"status":"failing","since":\#($0.since),"error":\#(JSONString.literal($0.publicMessage))}"# }
                ?? #"{"status":"ok"}"#
            // Refused files leave the status ok: the policy in force serves (a restart would not).
            let files = gateway.policies.lastError == nil ? "ok" : "refused"
            writeJSON(status: ledger == nil ? 200 : 503,
                      body: #"{"status":"\#(ledger == nil ? "ok" : "degraded")","policy_version":"\#(policy.version)","policy_reload_errors":\#(failed),"policy_files":"\#(files)","ledger":\#(ledgerJSON)}"#,
                      requestID: line.requestID)
        case (.GET, "/metrics"):
            if policy.gateway.metrics.access == .adminKey,
               case .failure(let refusal) = AdminAPI.authorise(secret: Self.secret(in: head.headers), in: gateway.principals,
                                                               reading: "/metrics (gateway.yaml metrics.access: admin_key)") {
                // As the admin API's refusals: answered, not recorded (no call was made).
                return writeAdmin(.refusal(refusal), requestID: line.requestID)
            }
            let (gateway, version) = (gateway, policy.version)
            gateway.metrics.renderOffLoop(on: eventLoop) {
                gateway.metrics.render(
                    policyVersion: version, reloadErrors: gateway.policies.failedReloads,
                    callsInFlight: gateway.enforcer.concurrency.totalInFlight,
                    openReservations: gateway.enforcer.openReservations, ledgerBacklog: gateway.ledger.backlog,
                    connections: gateway.connections.counts)
            }
                .assumeIsolated()
                .whenComplete { [self] result in
                    guard case .success(let body) = result else {
                        return writeRefusal(Self.shuttingDown, dialect: .openai, requestID: line.requestID)
                    }
                    var headers = HTTPHeaders()
                    headers.add(name: "content-type", value: "text/plain; version=0.0.4; charset=utf-8")
                    headers.add(name: "content-length", value: String(body.count))
                    writeHead(status: 200, headers: headers)
                    writeBody(ByteBuffer(bytes: body))
                    writeEnd()
                }
        case (.GET, "/dashboard"):
            // The page holds no data (it asks for an admin key and calls /admin/api/…), so it needs none.
            var headers = HTTPHeaders(DashboardPage.headers)
            let page = ByteBuffer(string: DashboardPage.html)
            headers.add(name: "content-length", value: String(page.readableBytes))
            writeHead(status: 200, headers: headers)
            writeBody(page)
            writeEnd()
        case (_, _) where path.hasPrefix("/admin/"):
            answerAdmin(head, path: path, body: body, requestID: line.requestID)
        case (.GET, _) where Self.isModelsPath(path):
            let secret = Self.secret(in: head.headers)
            switch Admit.identify(secret: secret, dialect: line.dialect, in: gateway.principals) {
            case .failure(let refusal):
                refuse(line, holder: gateway.principals.holder(ofSecret: secret), refusal)
            case .success(let principal) where principal.isAdmin:
                refuse(line, principal: principal, model: nil, Self.adminKeyOnModelRoute)
            case .success(let principal) where path != "/v1/models":
                // One model (ids may hold '/'): any the policy routes, listed or matched by a glob.
                let model = String(path.dropFirst(Self.modelPathPrefix.count)).removingPercentEncoding ?? ""
                guard !model.isEmpty, policy.provider(forModel: model) != nil else {
                    return refuse(line, principal: principal, model: nil, Refusal(.unknownModel,
                        "The model '\(model.prefix(200))' is not routed by this gateway's policy (see providers.yaml)."
                            + Admit.didYouMean(model, policy),
                        field: "model"))
                }
                writeJSON(status: 200, body: ModelList.item(model, dialect: line.dialect), requestID: line.requestID)
            case .success:
                writeJSON(status: 200, body: ModelList.body(policy.listedModels(), dialect: line.dialect),
                          requestID: line.requestID)
            }
        case (_, _) where Endpoint(proxyPath: path) != nil:
            refuse(line, holder: keyHolder(head),
                   Refusal(.methodNotAllowed, "\(head.method.rawValue) is not supported on \(path); use POST.",
                           headers: [("allow", "POST")]))
        case (_, _) where Self.readOnlyPaths.contains(path):
            refuse(line, holder: keyHolder(head),
                   Refusal(.methodNotAllowed, "\(head.method.rawValue) is not supported on \(path); use GET.",
                           headers: [("allow", "GET, HEAD")]))
        default:
            refuse(line, holder: keyHolder(head),
                   Refusal(.notFound, Self.unknownRoute(head.method, path)))
        }
    }

    func proxy(_ request: CallRequest) {
        let principal: Principal
        let identity = request.caller.map { .success($0) }
            ?? Admit.identify(secret: request.presentedSecret, dialect: request.endpoint.dialect, in: gateway.principals)
        switch identity {
        case .failure(let refusal):
            // An unknown caller's body is not looked at: no work, and no caller-chosen text in the ledger.
            return refuse(request.line, holder: gateway.principals.holder(ofSecret: request.presentedSecret), refusal)
        case .success(let p) where p.isAdmin:
            return refuse(request.line, principal: p, model: nil, Self.adminKeyOnModelRoute)
        case .success(let p):
            principal = p
        }
        if let token = request.idempotencyKey, idempotent == nil {
            guard claimIdempotency(token, request: request, principal: principal) else { return }
        }
        let admission: Admission
        switch Admit.admit(request, principal: principal, policy: policy,
                           today: Day(unixSeconds: request.startedAt / 1_000_000)) {
        case .failure(let refused):
            return refuse(request.line, principal: principal, model: refused.model, refused.refusal,
                          payer: refused.payer, provider: refused.provider, outputCapRequested: refused.outputCapRequested,
                          stream: refused.stream, body: request.body)
        case .success(let admitted):
            admission = admitted
        }
        if let shared = gateway.enforcer.sharedQuotas {
            return enforceShared(request, principal: principal, admission: admission, shared: shared)
        }
        enforced(Admit.enforce(admission, endpoint: request.endpoint, policy: policy, enforcer: gateway.enforcer,
                               startedAt: request.startedAt, now: UnixTime.nowMicros()),
                 request: request, principal: principal, admission: admission)
    }

    /// Starts the admitted call, or answers the refusal.
    func enforced(_ result: Result<Hold, Refusal>, request: CallRequest, principal: Principal,
                          admission: Admission) {
        switch result {
        case .failure(let refusal):
            refuse(request.line, principal: principal, model: admission.model, refusal, admission: admission,
                   body: request.body)
        case .success(let hold):
            let call = ProxiedCall(request: request, admission: admission, hold: hold,
                                   gateway: gateway, connection: self)
            state = .responding(call: call)
            call.start()
        }
    }

    /// Admission with budgets shared by the replicas: the reservation is a round trip to
    /// PostgreSQL, answered on this loop. A client that left meanwhile gets nothing started: what
    /// admission took is given back, and its row says so.
    func enforceShared(_ request: CallRequest, principal: Principal, admission: Admission,
                               shared: SharedQuotaBook) {
        Admit.enforce(admission, endpoint: request.endpoint, policy: policy, enforcer: gateway.enforcer, shared: shared,
                      callID: request.callID, startedAt: request.startedAt, now: UnixTime.nowMicros(), on: eventLoop)
            .assumeIsolated()
            .whenSuccess { [self] result in
                guard !clientConnected, case .success(let hold) = result else {
                    return enforced(result, request: request, principal: principal, admission: admission)
                }
                var entry = CallRecord.entry(for: request.line, admission: admission)
                CallRecord.settle(&entry, usage: nil, price: admission.price)
                entry.outcome = .clientCancelled
                entry.status = 499
                entry.errorMessage = "client closed the connection while its budget was being reserved"
                hold.settle(in: gateway.enforcer, cost: .zero, tokens: 0, startedAt: request.startedAt,
                            now: UnixTime.nowMicros())
                // Nothing was spent: the shared hold goes back whether or not the row commits.
                let (quota, enforcer, loop) = (hold.quota, gateway.enforcer, eventLoop)
                let release: @Sendable () -> Void = { quota?.settleShared(in: enforcer, cost: .zero, tokens: 0, on: loop) }
                gateway.record(entry, on: eventLoop, connection: self, notRecorded: { _ in release() }, then: release)
            }
    }

    /// The 404 of a path the gateway does not serve, with the fix when it is one of its routes
    /// for this method with `/v1` missing or doubled: the usual mistake in a client's base URL.
    static func unknownRoute(_ method: HTTPMethod, _ path: String) -> String {
        func served(_ path: String) -> Bool {
            method == .POST ? Endpoint(proxyPath: path) != nil : (method == .GET || method == .HEAD) && isModelsPath(path)
        }
        let shown = path.prefix(200)  // the path is the caller's: its row and answer stay bounded
        let unknown = "Unknown route \(method.rawValue) \(shown)."
        let baseURLs = "OpenAI's SDKs take the base URL with /v1 (http://HOST:PORT/v1), Anthropic's without (http://HOST:PORT)."
        if path.hasPrefix("/v1/v1/"), served(String(path.dropFirst(3))) {
            return unknown + " The path has /v1 twice: the client's base URL ends in /v1 and its SDK adds /v1 too. " + baseURLs
        }
        if !path.hasPrefix("/v1/"), served("/v1" + path) {
            return unknown + " Did you mean /v1\(shown)? " + baseURLs
        }
        return unknown
    }

    /// The gateway's own pages, answered to GET and HEAD only.
    private static let readOnlyPaths: Set<String> = ["/healthz", "/metrics", "/dashboard", "/v1/models"]
    private static let modelPathPrefix = "/v1/models/"

    /// The model list and one model (`GET /v1/models/{id}`; ids may hold '/').
    private static func isModelsPath(_ path: String) -> Bool {
        path == "/v1/models" || path.hasPrefix(modelPathPrefix)
    }

    /// A page whose work runs off the event loop, asked for while the gateway stops (its
    /// thread is gone).
    private static let shuttingDown = Refusal(.shuttingDown, "The gateway is shutting down.")

    /// Admin keys read the admin API and nothing else: they never run up a bill.
    private static let adminKeyOnModelRoute = Refusal(
        .wrongKeyRole, "This is an admin key: it opens the dashboard and the admin API, not model calls. Use a caller key (tokenctl keys create --user NAME).")

    /// `/admin/…`: answered (JSON, OpenAI-style errors) once the admin API's work, which runs off
    /// this loop, is done. Not recorded in the ledger, which holds model calls only.
    func answerAdmin(_ head: HTTPRequestHead, path: String, body: ByteBuffer, requestID: String) {
        let query = head.uri.firstIndex(of: "?").map { String(head.uri[head.uri.index(after: $0)...]) }
        admin.answer(method: head.method, path: path, queryString: query, secret: Self.secret(in: head.headers),
                     body: body, from: context?.channel.remoteAddress, on: eventLoop)
            .assumeIsolated()
            .whenComplete { [self] result in
                // The pool only fails when stopped (shutdown): answer as the proxy does then.
                writeAdmin((try? result.get()) ?? .refusal(Self.shuttingDown), requestID: requestID)
            }
    }

    /// An admin answer: never cached (it holds spend, keys, or a new key's secret).
    func writeAdmin(_ answer: AdminAPI.Answer, requestID: String) {
        writeJSON(status: answer.status, body: answer.body, requestID: requestID,
                  extraHeaders: answer.headers + [("cache-control", "no-store")])
    }

    /// Records the refusal, then answers it in the caller's dialect once the row has committed.
    /// Who pays is the admission's, else `payer`, else the caller's own plan; the provider the
    /// admission's, else `provider`. `body`: the request's, when it was read (a known caller's):
    /// its fingerprint goes in the row, so a repeat of a refused call counts as a retry.
    /// `revokedKey`: whose revoked key the refused request carried; its row names the key and
    /// its user (no payer: it is still a refusal of an unknown caller, within `unknown_callers`).
    func refuse(_ line: RequestLine, principal: Principal?, model: String?, _ refusal: Refusal,
                admission: Admission? = nil, payer: Payer? = nil, provider: Provider? = nil,
                outputCapRequested: Int? = nil, stream: Bool = false, body: ByteBuffer? = nil,
                revokedKey: Principal? = nil) {
        let payer = admission?.payer ?? payer ?? principal.map { Payer(user: $0.user, team: $0.team, plans: policy.plans) }
        if gateway.ledgerHealth.isFailing {
            // The row would wait behind the failing ledger, and the client with it: answer now,
            // unrecorded (counted), as for model calls while the ledger fails.
            gateway.metrics.recordUnrecordedRefusal(reason: refusal.outcome.refusalReason, plan: payer?.plan.planName)
            return writeRefusal(refusal, dialect: line.dialect, requestID: line.requestID)
        }
        if payer == nil, !gateway.unknownCallers.mayRecord(from: context?.channel.remoteAddress, policy.gateway.unknownCallers,
                                                           now: line.startedAt, on: eventLoop) {
            // Nobody known asked: past unknown_callers, answered without a row (a stranger's flood
            // must not fill the ledger's disk), counted.
            gateway.metrics.recordUnrecordedRefusal(reason: refusal.outcome.refusalReason, unknownCaller: true)
            return writeRefusal(refusal, dialect: line.dialect, requestID: line.requestID)
        }
        var entry = CallRecord.refused(line, principal: principal ?? revokedKey, payer: payer, model: model,
                                       provider: admission?.provider ?? provider, refusal: refusal, admission: admission,
                                       outputCapRequested: outputCapRequested, stream: stream)
        entry.requestHash = body.map(RequestFingerprint.of)
        if refusal.kind == .quotaStateUnavailable {
            // PostgreSQL, which holds the ledger too, may be down, and the row would wait for it
            // (until the heartbeats mark the ledger failing): a refusal costs nothing, so it is
            // answered now and its row follows when it commits.
            gateway.recordDetached(entry)
            return writeRefusal(refusal, dialect: line.dialect, requestID: line.requestID)
        }
        gateway.record(entry, on: eventLoop, connection: self) { [self] in
            writeRefusal(refusal, dialect: line.dialect, requestID: line.requestID)
        }
    }

    /// Whose key the request carries: refusals that come before identification (too large,
    /// wrong route) or without it (a revoked key) are still recorded against whoever made them.
    func keyHolder(_ head: HTTPRequestHead) -> PrincipalDirectory.KeyHolder {
        gateway.principals.holder(ofSecret: Self.secret(in: head.headers))
    }

    /// A refusal before the caller is admitted: recorded against the key's holder, if any.
    func refuse(_ line: RequestLine, holder: PrincipalDirectory.KeyHolder, _ refusal: Refusal) {
        refuse(line, principal: holder.active, model: nil, refusal, revokedKey: holder.revoked)
    }

    var tooLarge: Refusal {
        let limit = policy.gateway.maxBodyBytes
        return Refusal(.tooLarge, "Request body is larger than the gateway's limit of \(limit) bytes (max_body_bytes in gateway.yaml).")
    }

    func line(for head: HTTPRequestHead, startedAt: Int64) -> RequestLine {
        let path = Self.path(of: head.uri)
        let endpoint = Endpoint(proxyPath: path)
        let callID = CallIdentity.newCallID()
        return RequestLine(callID: callID,
                           requestID: CallIdentity.requestID(fromClient: head.headers.first(name: "x-request-id"), callID: callID),
                           startedAt: startedAt, dialect: Self.dialect(of: head, endpoint: endpoint),
                           route: endpoint?.rawValue ?? String(path.prefix(200)))
    }

    /// The dialect a request is answered in: its route's, else the Anthropic SDKs' headers say so.
    static func dialect(of head: HTTPRequestHead, endpoint: Endpoint?) -> Dialect {
        endpoint?.dialect
            ?? (head.headers.contains(name: "x-api-key") || head.headers.contains(name: "anthropic-version")
                ? .anthropic : .openai)
    }

    static func path(of uri: String) -> String {
        if let q = uri.firstIndex(of: "?") { return String(uri[..<q]) }
        return uri
    }

    /// The caller's key: `Authorization: Bearer KEY` (OpenAI SDKs) or `x-api-key: KEY` (Anthropic SDKs).
    /// Read on every call: a byte scan (lowercasing and Foundation's trimming cost 3 % of the CPU).
    static func secret(in headers: HTTPHeaders) -> String? {
        if let key = headers.first(name: "x-api-key") { return key }
        guard let auth = headers.first(name: "authorization") else { return nil }
        let bytes = auth.utf8
        let scheme = "bearer ".utf8
        guard bytes.count > scheme.count, bytes.starts(withIgnoringASCIICase: scheme) else { return nil }
        let isBlank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        let rest = bytes.dropFirst(scheme.count)
        guard let first = rest.firstIndex(where: { !isBlank($0) }),
              let last = rest.lastIndex(where: { !isBlank($0) }) else { return nil }
        return String(Substring(bytes[first...last]))
    }
}
