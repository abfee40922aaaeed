import Foundation
import NIOCore
import NIOHTTP1

/// One connection's HTTP handler (or one HTTP/2 stream's): collects a request, asks the `Router`
/// for a plan, then writes the plan piece by piece on the channel's event loop, pacing with
/// `scheduleTask` (never sleeping). Each piece is its own write and flush, so SSE event
/// boundaries reach the socket as written (unless `coalesceEvents` is on). On HTTP/1.1, NIO's
/// pipelining helper hands over one request at a time; an HTTP/2 stream carries one request.
/// Either way there is at most one answer in progress per handler.
final class FakeHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Larger request bodies are answered 413 (a fake needs no more).
    static let maxRequestBody = 64 << 20

    /// The answer in progress; a class so the writer and `channelInactive` see one state.
    private final class Reply {
        let plan: ReplyPlan
        let version: HTTPVersion
        let keepAlive: Bool
        var next = 0
        /// The delay before `plan.pieces[next]` has already been waited for.
        var waited = false
        var headSent = false
        /// Nil when exchanges are not recorded.
        var exchange: FakeExchange?

        init(plan: ReplyPlan, version: HTTPVersion, keepAlive: Bool, exchange: FakeExchange?) {
            self.plan = plan
            self.version = version
            self.keepAlive = keepAlive
            self.exchange = exchange
        }
    }

    private let configuration: FakeLLMConfiguration
    private let log: ExchangeLog
    private let held: HeldAnswers
    private var requestHead: HTTPRequestHead?
    private var requestBody: ByteBuffer?
    private var requestTooLarge = false
    private var reply: Reply?
    private var timer: Scheduled<Void>?

    init(configuration: FakeLLMConfiguration, log: ExchangeLog, held: HeldAnswers) {
        self.configuration = configuration
        self.log = log
        self.held = held
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            requestHead = head
            requestBody = nil
            requestTooLarge = false
            // curl sends `Expect: 100-continue` for large bodies and stalls a second without it.
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                let interim = HTTPResponseHead(version: head.version, status: .continue)
                context.writeAndFlush(wrapOutboundOut(.head(interim)), promise: nil)
            }
        case .body(var chunk):
            if requestBody == nil {
                requestBody = chunk
            } else if requestBody!.readableBytes + chunk.readableBytes <= Self.maxRequestBody {
                requestBody!.writeBuffer(&chunk)
            } else {
                requestTooLarge = true
            }
        case .end:
            guard let head = requestHead else { return }
            requestHead = nil
            let body = requestBody ?? ByteBuffer()
            requestBody = nil
            begin(context: context, head: head, body: body)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if var exchange = reply?.exchange {  // the client left mid-answer
            exchange.endedAt = Date().timeIntervalSince1970
            log.record(exchange)
        }
        reply = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    // MARK: answering

    private func begin(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        let serial = log.nextRequest()
        var knobs = RequestKnobs(defaults: configuration)
        for header in head.headers { knobs.apply(name: header.name, value: header.value) }
        let requestID = knobs.requestID ?? "fake-\(serial)"
        var decision = Router.decide(method: head.method, uri: head.uri, knobs: knobs, body: body,
                                     configuration: configuration, serial: serial, requestID: requestID)
        if requestTooLarge {
            decision.plan = .body(status: .payloadTooLarge, "{\"error\":\"request body too large for FakeLLM\"}")
        } else if knobs.failure == .dropConnectionOnce || knobs.failure == .goAwayOnce,
                  log.dropsConnection(requestID: requestID) {
            decision.plan = .drop(goAway: knobs.failure == .goAwayOnce)
        }
        if case .http11RequiredAfter = decision.plan.ending, head.version.major < 2 { decision.plan.ending = .complete }
        // A cut or reset answer closes too, but without saying so, like a real failure.
        // On HTTP/2 each request has a stream of its own, which ends with its answer.
        let persistent = head.version.major >= 2 || head.isKeepAlive
        let keepAlive = persistent && decision.plan.ending == .complete
        if !persistent { decision.plan.headers.replaceOrAdd(name: "connection", value: "close") }

        var exchange: FakeExchange?
        if configuration.recordExchanges {
            exchange = FakeExchange(
                requestID: requestID, route: decision.route, method: head.method.rawValue,
                httpVersion: head.version.description, path: head.uri,
                requestHeaders: head.headers.map { ($0.name, $0.value) }, requestBody: Array(body.readableBytesView),
                responseStatus: 0, responseHeaders: [], responseBody: [], responseChunks: [], completed: false)
        }
        reply = Reply(plan: decision.plan, version: head.version, keepAlive: keepAlive, exchange: exchange)
        guard let hold = knobs.hold else { return after(knobs.firstByteDelay, context: context) }
        let loop = context.eventLoop, delay = knobs.firstByteDelay
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        held.hold(hold) {
            loop.execute {
                let (handler, context) = bound.value
                handler.after(delay, context: context)  // a connection gone meanwhile has no reply left
            }
        }
    }

    private func after(_ delay: Duration, context: ChannelHandlerContext) {
        guard delay > .zero else { return advance(context: context) }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: delay.timeAmount) {
            self.timer = nil
            self.advance(context: context)
        }
    }

    /// Writes every piece that is due, then either waits for the next one's delay or ends.
    private func advance(context: ChannelHandlerContext) {
        guard let r = reply else { return }
        if r.plan.ending == .resetBeforeHeaders { return reset(context: context) }
        if case .dropConnection(let goAway) = r.plan.ending { return drop(goAway: goAway, context: context) }
        let coalesce = configuration.coalesceEvents
        if r.plan.headFirst, !r.headSent {
            writeHead(r, context: context)
            if !coalesce { context.flush() }
        }
        while r.next < r.plan.pieces.count {
            if case .cutAfter(let count) = r.plan.ending, r.next == count { break }
            if case .http11RequiredAfter(let count) = r.plan.ending, r.next == count { break }
            let piece = r.plan.pieces[r.next]
            if piece.delay > .zero, !r.waited {
                r.waited = true
                if coalesce { context.flush() }
                return after(piece.delay, context: context)
            }
            r.waited = false
            if !r.headSent { writeHead(r, context: context) }
            r.exchange?.responseChunks.append(Array(piece.bytes.readableBytesView))
            r.exchange?.responseBody.append(contentsOf: piece.bytes.readableBytesView)
            r.next += 1
            if r.next == r.plan.pieces.count, r.plan.ending == .complete {
                return finish(r, last: piece.bytes, context: context)
            }
            if coalesce {
                context.write(wrapOutboundOut(.body(.byteBuffer(piece.bytes))), promise: nil)
            } else {
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(piece.bytes))), promise: nil)
            }
            guard reply === r else { return }  // the write found the connection gone
        }
        if case .cutAfter = r.plan.ending {
            cut(r, context: context)
        } else if case .http11RequiredAfter = r.plan.ending {
            if !r.headSent { writeHead(r, context: context) }
            reply = nil
            if let exchange = r.exchange { log.record(exchange) }
            context.flush()
            context.triggerUserOutboundEvent(FakeStreamReset.http11Required, promise: nil)
        } else {
            if !r.headSent { writeHead(r, context: context) }
            finish(r, last: nil, context: context)
        }
    }

    private func writeHead(_ r: Reply, context: ChannelHandlerContext) {
        r.headSent = true
        r.exchange?.responseStatus = Int(r.plan.status.code)
        r.exchange?.responseHeaders = r.plan.headers.map { ($0.name, $0.value) }
        let head = HTTPResponseHead(version: r.version, status: r.plan.status, headers: r.plan.headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
    }

    /// Records the exchange, then writes the final bytes: a test that has read the whole
    /// answer always finds its exchange.
    private func finish(_ r: Reply, last: ByteBuffer?, context: ChannelHandlerContext) {
        reply = nil
        if var exchange = r.exchange {
            exchange.completed = true
            exchange.endedAt = Date().timeIntervalSince1970
            log.record(exchange)
        }
        if let last { context.write(wrapOutboundOut(.body(.byteBuffer(last))), promise: nil) }
        if r.keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Closes after part of the answer: no terminating chunk, or fewer bytes than announced.
    private func cut(_ r: Reply, context: ChannelHandlerContext) {
        reply = nil
        if let exchange = r.exchange { log.record(exchange) }
        context.flush()
        context.close(promise: nil)
    }

    /// Closes the TCP connection (an HTTP/2 stream's parent; an HTTP/1.1 channel's parent is
    /// the listening socket) with no response: FIN, after a GOAWAY when `goAway` (which the
    /// HTTP/2 transport writes, as it alone knows the stream's id).
    private func drop(goAway: Bool, context: ChannelHandlerContext) {
        guard let r = reply else { return }
        if let exchange = r.exchange { log.record(exchange) }
        reply = nil
        guard r.version.major >= 2 else { return context.close(promise: nil) }
        if goAway {
            context.triggerUserOutboundEvent(FakeConnectionDrain(), promise: nil)
        } else {
            context.channel.parent?.close(promise: nil)
        }
    }

    /// SO_LINGER 0 makes close send RST instead of FIN: the client sees a reset, no response.
    private func reset(context: ChannelHandlerContext) {
        if let exchange = reply?.exchange { log.record(exchange) }
        reply = nil
        guard let provider = context.channel as? SocketOptionProvider else {
            return context.close(promise: nil)
        }
        provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
