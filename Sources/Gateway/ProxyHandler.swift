import Foundation
import Ledger
import Metering
import NIOCore
import NIOHTTP1
import Policy
import PostgresLedger

/// The HTTP/1.1 server side of one client connection. Reads a request, routes it, and runs the
/// call on this connection's event loop (no Task per request).
///
/// Pipelined requests (sent before the current answer ended) are kept here, in order, and served
/// after it. NIO's `HTTPServerPipelineHandler` would do that by stopping reads during every
/// answer, which costs two `epoll_ctl` calls per request; here reading stops only while a
/// pipelined request actually waits.
final class ProxyHandler: ChannelDuplexHandler, ClientConnection {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    let gateway: GatewayContext
    private let admin: AdminAPI
    var context: ChannelHandlerContext?
    var state: State = .idle
    private var keepAlive = true
    /// The gateway is stopping: no connection is kept alive after its current answer.
    private var draining = false
    /// The current request's `Idempotency-Key` claim and its answer as written so far (2xx only),
    /// kept when the answer ends whole, released otherwise.
    var idempotent: (key: IdempotencyStore.Key, requestID: String)?
    var answerCapture: (status: Int, headers: [(String, String)], body: ByteBuffer)?
    /// The policy in force when the current request's head arrived; the whole call uses it.
    private var policy: PolicySet
    private var responseVersion = HTTPVersion.http1_1

    enum State {
        case idle
        case receiving(head: HTTPRequestHead, body: ByteBuffer, startedAt: Int64)
        case responding(call: ProxiedCall?)
    }

    /// Request parts that arrived while an answer was being written, served after it; and
    /// whether NIO asked to read meanwhile (the read is passed on once they are served).
    private var pipelined = CircularBuffer<HTTPServerRequestPart>()
    private var readHeld = false

    /// The head of the next request (`header_timeout_ms`), or the body of this one
    /// (`body_timeout_ms`), must arrive by this deadline.
    private var readDeadline = ReadDeadline()

    /// More request headers than any SDK sends (they send about 20), or more bytes of them:
    /// refused with 431 before anything else is done with the request.
    static let maxHeaderCount = 256
    static let maxHeaderBytes = 64 * 1024

    /// The connection's loop; kept apart from `context`, which is gone once the channel closes
    /// while a call that still has to be recorded lives on.
    let eventLoop: any EventLoop

    init(gateway: GatewayContext, admin: AdminAPI, eventLoop: any EventLoop) {
        self.gateway = gateway
        self.admin = admin
        self.eventLoop = eventLoop
        self.policy = gateway.policies.policy
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { awaitRequest() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        readDeadline.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        awaitRequest()
        context.fireChannelActive()
    }

    /// Waiting for a request head (a new connection, or idle between keep-alive requests): a
    /// client that does not finish one in time (a slowloris, or a forgotten connection) is closed.
    private func awaitRequest() {
        expectRead(.request, withinMs: gateway.policies.policy.gateway.headerTimeoutMs)
    }

    /// The head arrived: the body has `body_timeout_ms` to follow, else 408.
    private func awaitBody() {
        let timeout = gateway.policies.policy.gateway.bodyTimeoutMs
        expectRead(.body(timeoutMs: timeout), withinMs: timeout)
    }

    private func expectRead(_ wait: ReadDeadline.Wait, withinMs timeout: Int) {
        let deadline = NIODeadline.now() + .milliseconds(Int64(timeout))
        if readDeadline.expect(wait, by: deadline) { armReadTimer(at: deadline) }
    }

    private func armReadTimer(at deadline: NIODeadline) {
        let timer = eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            switch readDeadline.fired(now: .now()) {
            case .idle:
                break
            case .rearm(let later):
                armReadTimer(at: later)
            case .expired(.request):
                guard case .idle = state else { return }
                context?.close(promise: nil)
            case .expired(.body(let timeout)):
                guard case .receiving(let head, _, let startedAt) = state else { return }
                refuseBeforeEnd(head: head, startedAt: startedAt,
                                Refusal(.requestTimeout, "The request body did not arrive within \(timeout) ms (body_timeout_ms in gateway.yaml)."))
            }
        }
        readDeadline.armed(timer, at: deadline)
    }

    /// Answers a request whose head or body broke a limit before its end: the rest of it is not
    /// read (the connection closes after the answer).
    private func refuseBeforeEnd(head: HTTPRequestHead, startedAt: Int64, _ refusal: Refusal) {
        readDeadline.satisfied()
        state = .responding(call: nil)
        keepAlive = false
        refuse(line(for: head, startedAt: startedAt), principal: knownPrincipal(head), model: nil, refusal)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if isResponding {
            // The connection closes after this answer: what follows will not be served.
            if keepAlive { pipelined.append(part) }
            return
        }
        if !pipelined.isEmpty { return pipelined.append(part) }
        serve(part, context: context)
    }

    private var isResponding: Bool {
        if case .responding = state { return true }
        return false
    }

    func read(context: ChannelHandlerContext) {
        if pipelined.isEmpty { context.read() } else { readHeld = true }
    }

    /// The answer ended and the connection stays open: requests sent meanwhile are served now.
    private func servePipelined() {
        while let context, !isResponding, let part = pipelined.popFirst() {
            serve(part, context: context)
        }
        if pipelined.isEmpty && readHeld {
            readHeld = false
            context?.read()
        }
    }

    private func serve(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            let startedAt = UnixTime.nowMicros()
            policy = gateway.policies.policy
            keepAlive = head.isKeepAlive && !draining
            responseVersion = head.version
            let declared = head.headers.first(name: "content-length").flatMap(Int.init) ?? 0
            let headerBytes = head.headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 4 }
            if head.headers.count > Self.maxHeaderCount || headerBytes > Self.maxHeaderBytes {
                return refuseBeforeEnd(head: head, startedAt: startedAt, Refusal(.headersTooLarge,
                    "Too many request headers (\(head.headers.count), \(headerBytes) bytes; the limit is \(Self.maxHeaderCount) headers and \(Self.maxHeaderBytes) bytes)."))
            }
            if declared > policy.gateway.maxBodyBytes {
                // Answered at once: a client must not be able to make the gateway read (or wait
                // for) a body it will refuse anyway.
                return refuseBeforeEnd(head: head, startedAt: startedAt, tooLarge)
            }
            // curl and some SDKs wait (1 s for curl) for this before sending a large body.
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))),
                                      promise: nil)
            }
            let capacity = min(max(declared, 256), 1 << 20)
            state = .receiving(head: head, body: context.channel.allocator.buffer(capacity: capacity),
                               startedAt: startedAt)
            awaitBody()
        case .body(var chunk):
            guard case .receiving(let head, var body, let startedAt) = state else { return }
            if body.readableBytes + chunk.readableBytes > policy.gateway.maxBodyBytes {
                return refuseBeforeEnd(head: head, startedAt: startedAt, tooLarge)
            }
            state = .idle  // drop the reference so the append does not copy
            body.writeBuffer(&chunk)
            state = .receiving(head: head, body: body, startedAt: startedAt)
        case .end:
            guard case .receiving(let head, let body, let startedAt) = state else { return }
            readDeadline.satisfied()
            state = .responding(call: nil)
            dispatch(head: head, body: body, startedAt: startedAt)
        }
    }

    /// A request NIO cannot parse (e.g. headers past its decoder's limit) has already been
    /// answered 400 by `HTTPServerProtocolErrorHandler`; nothing more can be read from this
    /// connection, so it is closed. There is no request to record.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError {
            readDeadline.satisfied()
            if case .responding(let call?) = state { call.clientDisconnected() }
            state = .responding(call: nil)
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    /// The gateway is stopping: an idle connection closes now; a busy one answers, then closes.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is OpenConnections.Draining else { return context.fireUserInboundEventTriggered(event) }
        draining = true
        keepAlive = false
        if case .idle = state {
            readDeadline.satisfied()
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        readDeadline.satisfied()
        if case .responding(let call?) = state { call.clientDisconnected() }
        // A request that claimed an idempotency key and will not finish here releases it (a
        // call still settling releases it itself when it ends: abort() or writeEnd()).
        if case .responding(nil) = state { settleIdempotency(delivered: false) }
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .responding(let call?) = state {
            call.clientWritabilityChanged(isWritable: context.channel.isWritable)
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: routing

    private func dispatch(head: HTTPRequestHead, body: ByteBuffer, startedAt: Int64) {
        let line = line(for: head, startedAt: startedAt)
        let path = Self.path(of: head.uri)

        if head.method == .POST, let endpoint = Endpoint(proxyPath: path) {
            // Fail closed: a call that could not be recorded is not made. Answered at once and
            // not recorded (the ledger is what is failing); counted in the metrics.
            if gateway.ledgerHealth.isFailing {
                let refusal = gateway.ledgerHealth.refusal
                gateway.metrics.recordUnrecordedRefusal(reason: "ledger_unavailable")
                return writeRefusal(refusal, dialect: endpoint.dialect, requestID: line.requestID)
            }
            var forwarded: [(String, String)] = []
            for (name, value) in head.headers where Forward.forwardedClientHeaders.contains(name.lowercased()) {
                forwarded.append((name.lowercased(), value))
            }
            let request = CallRequest(endpoint: endpoint, requestID: line.requestID, startedAt: startedAt,
                                      presentedSecret: Self.secret(in: head.headers),
                                      forwardedHeaders: forwarded,
                                      declaredEndUser: head.headers.first(name: "x-tokenctl-user"),
                                      idempotencyKey: head.headers.first(name: "idempotency-key"), body: body)
            proxy(request)
            return
        }
        switch (head.method, path) {
        case (.GET, "/healthz"):
            // The policy in force and failed reloads since start (a refused change keeps the old one).
            // 503 while the ledger fails, so a load balancer sends traffic to another replica.
            let failed = gateway.policies.failedReloads
            let ledger = gateway.ledgerHealth.current
            let ledgerJSON = ledger.map { #"{"status":"failing","since":\#($0.since),"error":\#(JSONString.literal($0.message))}"# }
                ?? #"{"status":"ok"}"#
            writeJSON(status: ledger == nil ? 200 : 503,
                      body: #"{"status":"\#(ledger == nil ? "ok" : "degraded")","policy_version":"\#(policy.version)","policy_reload_errors":\#(failed),"ledger":\#(ledgerJSON)}"#,
                      requestID: line.requestID)
        case (.GET, "/metrics"):
            let body = gateway.metrics.render(
                policyVersion: policy.version, reloadErrors: gateway.policies.failedReloads,
                callsInFlight: gateway.enforcer.concurrency.totalInFlight,
                openReservations: gateway.enforcer.openReservations, ledgerBacklog: gateway.ledger.backlog)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "text/plain; version=0.0.4; charset=utf-8")
            headers.add(name: "content-length", value: String(body.count))
            writeHead(status: 200, headers: headers)
            writeBody(ByteBuffer(bytes: body))
            writeEnd()
        case (.GET, "/dashboard"):
            // The page holds no data (it asks for an admin key and calls /admin/api/…), so it needs none.
            var headers = HTTPHeaders(DashboardPage.headers)
            let page = ByteBuffer(string: DashboardPage.html)
            headers.add(name: "content-length", value: String(page.readableBytes))
            writeHead(status: 200, headers: headers)
            writeBody(page)
            writeEnd()
        case (_, _) where path.hasPrefix("/admin/"):
            answerAdmin(head, path: path, requestID: line.requestID)
        case (.GET, "/v1/models"):
            switch Admit.identify(secret: Self.secret(in: head.headers), dialect: line.dialect, in: gateway.principals) {
            case .failure(let refusal):
                refuse(line, principal: nil, model: nil, refusal)
            case .success(let principal) where principal.isAdmin:
                refuse(line, principal: principal, model: nil, Self.adminKeyOnModelRoute)
            case .success:
                writeJSON(status: 200, body: ModelList.body(policy.listedModels(), dialect: line.dialect),
                          requestID: line.requestID)
            }
        case (_, _) where Endpoint(proxyPath: path) != nil:
            refuse(line, principal: knownPrincipal(head), model: nil,
                   Refusal(.methodNotAllowed, "\(head.method.rawValue) is not supported on \(path); use POST.",
                           headers: [("allow", "POST")]))
        default:
            refuse(line, principal: knownPrincipal(head), model: nil,
                   Refusal(.notFound, "Unknown route \(head.method.rawValue) \(path)."))
        }
    }

    func proxy(_ request: CallRequest) {
        let principal: Principal
        switch Admit.identify(secret: request.presentedSecret, dialect: request.endpoint.dialect, in: gateway.principals) {
        case .failure(let refusal):
            // An unknown caller's body is not read: no work, and no caller-chosen text in the ledger.
            return refuse(request.line, principal: nil, model: nil, refusal)
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
        case .failure(let refusal):
            return refuse(request.line, principal: principal, model: (try? RequestPeek(body: request.body))?.model, refusal)
        case .success(let admitted):
            admission = admitted
        }
        if let shared = gateway.enforcer.sharedQuotas {
            return enforceShared(request, principal: principal, admission: admission, shared: shared)
        }
        enforced(Admit.enforce(admission, endpoint: request.endpoint, policy: policy, enforcer: gateway.enforcer,
                               now: UnixTime.nowMicros()),
                 request: request, principal: principal, admission: admission, callID: CallIdentity.newCallID())
    }

    /// Starts the admitted call, or answers the refusal.
    private func enforced(_ result: Result<Hold, Refusal>, request: CallRequest, principal: Principal,
                          admission: Admission, callID: String) {
        switch result {
        case .failure(let refusal):
            refuse(request.line, principal: principal, model: admission.model, refusal, admission: admission)
        case .success(let hold):
            let call = ProxiedCall(request: request, admission: admission, hold: hold, callID: callID,
                                   gateway: gateway, connection: self)
            state = .responding(call: call)
            call.start()
        }
    }

    /// Admission with budgets shared by the replicas: the reservation is a round trip to
    /// PostgreSQL, answered on this loop. A client that left meanwhile gets nothing started: what
    /// admission took is given back, and its row says so.
    private func enforceShared(_ request: CallRequest, principal: Principal, admission: Admission,
                               shared: SharedQuotaBook) {
        let callID = CallIdentity.newCallID()
        Admit.enforce(admission, endpoint: request.endpoint, policy: policy, enforcer: gateway.enforcer, shared: shared,
                      callID: callID, startedAt: request.startedAt, now: UnixTime.nowMicros(), on: eventLoop)
            .assumeIsolated()
            .whenSuccess { [self] result in
                guard context == nil, case .success(let hold) = result else {
                    return enforced(result, request: request, principal: principal, admission: admission, callID: callID)
                }
                var entry = CallRecord.entry(for: request, admission: admission)
                CallRecord.settle(&entry, usage: nil, price: admission.price)
                entry.id = callID
                entry.outcome = .clientCancelled
                entry.status = 499
                entry.errorMessage = "client closed the connection while its budget was being reserved"
                hold.settle(in: gateway.enforcer, cost: .zero, tokens: 0, now: UnixTime.nowMicros())
                // Nothing was spent: the shared hold goes back whether or not the row commits.
                let (enforcer, loop) = (gateway.enforcer, eventLoop)
                let release: @Sendable () -> Void = { hold.settleShared(in: enforcer, cost: .zero, tokens: 0, on: loop) }
                gateway.record(entry, on: eventLoop, connection: self, notRecorded: release, then: release)
            }
    }

    /// Admin keys read the admin API and nothing else: they never run up a bill.
    private static let adminKeyOnModelRoute = Refusal(
        .wrongKeyRole, "This is an admin key: it opens the dashboard and the admin API, not model calls. Use a caller key (tokenctl keys create --user NAME).")

    /// `/admin/…`: answered (JSON, OpenAI-style errors) once the admin API's work, which runs off
    /// this loop, is done. Not recorded in the ledger, which holds model calls only.
    private func answerAdmin(_ head: HTTPRequestHead, path: String, requestID: String) {
        let query = head.uri.firstIndex(of: "?").map { String(head.uri[head.uri.index(after: $0)...]) }
        admin.answer(method: head.method, path: path, queryString: query, secret: Self.secret(in: head.headers),
                     on: eventLoop)
            .assumeIsolated()
            .whenComplete { [self] result in
                // The pool only fails when stopped (shutdown): answer as the proxy does then.
                let answer = (try? result.get())
                    ?? AdminAPI.Answer.refusal(Refusal(.shuttingDown, "The gateway is shutting down."))
                var headers = answer.headers
                headers.append(("cache-control", "no-store"))
                writeJSON(status: answer.status, body: answer.body, requestID: requestID, extraHeaders: headers)
            }
    }

    /// Records the refusal, then answers it in the caller's dialect once the row has committed.
    func refuse(_ line: RequestLine, principal: Principal?, model: String?, _ refusal: Refusal,
                        admission: Admission? = nil) {
        if gateway.ledgerHealth.isFailing {
            // The row would wait behind the failing ledger, and the client with it: answer now,
            // unrecorded (counted), as for model calls while the ledger fails.
            gateway.metrics.recordUnrecordedRefusal(reason: String(refusal.outcome.rawValue.dropFirst(Outcome.refusalPrefix.count)))
            return writeRefusal(refusal, dialect: line.dialect, requestID: line.requestID)
        }
        let entry = CallRecord.refused(line, principal: principal, model: model, refusal: refusal, admission: admission)
        gateway.record(entry, on: eventLoop, connection: self) { [self] in
            writeRefusal(refusal, dialect: line.dialect, requestID: line.requestID)
        }
    }

    /// The caller, if the request carries a valid key: refusals that come before identification
    /// (too large, wrong route) are still recorded against whoever made them.
    private func knownPrincipal(_ head: HTTPRequestHead) -> Principal? {
        Self.secret(in: head.headers).flatMap(gateway.principals.principal(forSecret:))
    }

    private var tooLarge: Refusal {
        let limit = policy.gateway.maxBodyBytes
        return Refusal(.tooLarge, "Request body is larger than the gateway's limit of \(limit) bytes (max_body_bytes in gateway.yaml).")
    }

    private func line(for head: HTTPRequestHead, startedAt: Int64) -> RequestLine {
        let path = Self.path(of: head.uri)
        let endpoint = Endpoint(proxyPath: path)
        let dialect = endpoint?.dialect
            ?? (head.headers.contains(name: "x-api-key") || head.headers.contains(name: "anthropic-version")
                ? .anthropic : .openai)
        return RequestLine(requestID: CallIdentity.requestID(fromClient: head.headers.first(name: "x-request-id")),
                           startedAt: startedAt, dialect: dialect,
                           route: endpoint?.rawValue ?? String(path.prefix(200)))
    }

    private static func path(of uri: String) -> String {
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
        let lowered: (UInt8) -> UInt8 = { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
        guard bytes.count > scheme.count,
              zip(bytes, scheme).allSatisfy({ lowered($0) == $1 }) else { return nil }
        let isBlank: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 }
        let rest = bytes.dropFirst(scheme.count)
        guard let first = rest.firstIndex(where: { !isBlank($0) }),
              let last = rest.lastIndex(where: { !isBlank($0) }) else { return nil }
        return String(Substring(bytes[first...last]))
    }

    // MARK: ClientConnection

    func writeHead(status: Int, headers: HTTPHeaders) {
        guard let context else { return }
        if idempotent != nil, (200..<300).contains(status) {
            // Only what belongs to the answer itself is kept for replays: not this connection's
            // framing, nor the limits and budget as they stood for this call.
            let kept = headers.filter { !Self.perCallHeader($0.name) }.map { ($0.name, $0.value) }
            answerCapture = (status, kept, ByteBuffer())
        }
        var headers = headers
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        let head = HTTPResponseHead(version: responseVersion, status: HTTPResponseStatus(statusCode: status),
                                    headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
    }

    func writeBody(_ chunk: ByteBuffer) {
        if answerCapture != nil {
            // Past the store's limit only the size matters (the answer will not be kept).
            if answerCapture!.body.readableBytes <= gateway.idempotency.maxAnswerBytes {
                var copy = chunk
                answerCapture!.body.writeBuffer(&copy)
            }
        }
        context?.write(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
    }

    func flush() { context?.flush() }

    func writeEnd() {
        state = .idle  // first: a closed connection must still drop its call (no handler ⇄ call cycle)
        settleIdempotency(delivered: true)
        guard let context else { return }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            awaitRequest()
            servePipelined()
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func abort() {
        state = .idle
        settleIdempotency(delivered: false)
        // What was written goes out before the cut (a close drops unflushed writes).
        context?.flush()
        context?.close(promise: nil)
    }
}
