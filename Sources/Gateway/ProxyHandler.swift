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
    let admin: AdminAPI
    var context: ChannelHandlerContext?
    /// The client is gone (`channelInactive`): NIO removes the handler, and `context`, only in a
    /// later pass, and an answer from elsewhere (a shared reservation, an idempotency wait) may
    /// arrive in between.
    private var inactive = false
    /// The client is still there to be answered.
    var clientConnected: Bool { context != nil && !inactive }
    var state: State = .idle
    private var keepAlive = true
    /// The gateway is stopping: no connection is kept alive after its current answer.
    private var draining = false
    /// The current request's `Idempotency-Key` claim and its answer as written so far (2xx only),
    /// kept when the answer ends whole, released otherwise.
    var idempotent: (key: IdempotencyStore.Key, requestID: String)?
    var answerCapture: (status: Int, headers: [(String, String)], body: ByteBuffer)?
    /// Answering a HEAD: the GET's head (its content-length too), no body.
    var headOnly = false
    /// The policy in force when the current request's head arrived; the whole call uses it.
    private(set) var policy: PolicySet
    private var responseVersion = HTTPVersion.http1_1
    /// The current request's `access-control-allow-origin`: its origin is one `cors` allows.
    var allowedOrigin: String?
    /// Whose key a proxied call's head presented (nil for other requests): checked on the head, so
    /// that the body of an unknown caller is never read.
    var caller: Principal?

    enum State {
        case idle
        case receiving(head: HTTPRequestHead, body: ByteBuffer, startedAt: Int64)
        case responding(call: ProxiedCall?)
    }

    /// Request parts that arrived while an answer was being written, served after it; and
    /// whether NIO asked to read meanwhile (the read is passed on once they are served).
    private var pipelined = CircularBuffer<HTTPServerRequestPart>()
    private var readHeld = false
    /// The request was answered before its body was read (413, 431): whatever arrives is
    /// dropped, and the connection closes after the answer by a lingering close.
    private var bodyLeftUnread = false
    /// How long a lingering close waits for the client to close its side.
    static let lingerLimit = TimeAmount.seconds(5)

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
        leaveBodyUnread()
        refuse(line(for: head, startedAt: startedAt), holder: keyHolder(head), refusal)
    }

    /// The answer goes before the request's end, and the connection closes after it.
    private func leaveBodyUnread() {
        readDeadline.satisfied()
        state = .responding(call: nil)
        keepAlive = false
        bodyLeftUnread = true
    }

    /// Checks the key on a request's head, before its body is read. A proxied call's caller is
    /// kept (`caller`). With a body coming, a request without a known key (an admin request:
    /// without an admin key) is answered at once and the body never read: without a key nobody
    /// makes the gateway hold bodies (up to max_body_bytes each, for as long as body_timeout_ms).
    /// Returns whether it answered.
    private func refusedOnHead(_ head: HTTPRequestHead, bodyComing: Bool, startedAt: Int64) -> Bool {
        caller = nil
        let path = Self.path(of: head.uri)
        let secret = Self.secret(in: head.headers)
        if path.hasPrefix("/admin/") {
            guard bodyComing, case .failure(let refusal) = AdminAPI.authorise(secret: secret, in: gateway.principals)
            else { return false }
            admin.noteRefused(method: head.method, path: path, refusal, from: context?.channel.remoteAddress, on: eventLoop)
            leaveBodyUnread()
            writeAdmin(.refusal(refusal), requestID: line(for: head, startedAt: startedAt).requestID)
            return true
        }
        let endpoint = head.method == .POST ? Endpoint(proxyPath: path) : nil
        // A call while the ledger fails is answered as it ends (503, unrecorded). Of the other
        // requests, only one with a body is looked at here: no route reads that body (a wrong
        // method, an unknown path), and its answer does not need it.
        guard endpoint != nil ? !gateway.ledgerHealth.isFailing : bodyComing else { return false }
        switch Admit.identify(secret: secret, dialect: Self.dialect(of: head, endpoint: endpoint), in: gateway.principals) {
        case .success(let principal):
            if endpoint != nil { caller = principal }
            return false
        case .failure(let refusal) where bodyComing:
            refuseBeforeEnd(head: head, startedAt: startedAt, refusal)
            return true
        case .failure:
            return false  // no body to hold: refused as it ends, and the connection stays
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if bodyLeftUnread { return }  // (before its answer's end too: the connection will close)
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
            allowedOrigin = policy.gateway.cors.allowedOrigins.isEmpty || !CrossOrigin.covers(path: Self.path(of: head.uri))
                ? nil : head.headers.first(name: "origin").flatMap(policy.gateway.cors.allowOrigin(for:))
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
            if refusedOnHead(head, bodyComing: declared > 0 || head.headers.contains(name: "transfer-encoding"),
                             startedAt: startedAt) { return }
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
        inactive = true
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
        if let allowedOrigin { CrossOrigin.allow(allowedOrigin, in: &headers) }
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
        guard !headOnly else { return }
        context?.write(wrapOutboundOut(.body(.byteBuffer(chunk))), promise: nil)
    }

    func flush() { context?.flush() }

    func writeEnd() {
        state = .idle  // first: a closed connection must still drop its call (no handler ⇄ call cycle)
        headOnly = false
        settleIdempotency(delivered: true)
        guard let context else { return }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            awaitRequest()
            servePipelined()
        } else if bodyLeftUnread {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in Self.closeLingering(channel) }
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// Closes a connection whose client may still be sending the body of the request just
    /// answered. Closing it at once, with those bytes unread, would reset it (RST), and a client
    /// still writing then loses the answer it was sent (an asyncio client's read fails, and the
    /// SDKs retry a connection error, body and all). So the answer's end is followed by closing
    /// only the sending side; the client reads the answer and closes, or after `lingerLimit`
    /// the connection is closed anyway.
    private static func closeLingering(_ channel: any Channel) {
        channel.close(mode: .output).whenComplete { result in
            guard case .success = result else { return channel.close(promise: nil) }
            channel.eventLoop.scheduleTask(in: lingerLimit) { channel.close(promise: nil) }
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
