import CCurl
import NIOCore
import Synchronization

/// What one curl pass produced for a transfer, handed to its event loop in one hop.
struct Delivery: Sendable {
    var head: UpstreamHead?
    var body: ByteBuffer?
    var end: Result<UpstreamTiming, UpstreamError>?
}

/// One upstream call, seen from both sides of the hop.
///
/// Ownership (why `@unchecked Sendable` is sound): the fields are split by the
/// thread that may touch them and never shared —
/// - immutable `let`s: any thread;
/// - "event loop" fields: only on `eventLoop`;
/// - "curl thread" fields, the header list and the body copy: only on the
///   driver thread once `start` has been enqueued (built before that, by the
///   thread calling `start`, and published through the driver's locked queue).
final class CurlTransfer: @unchecked Sendable {
    let eventLoop: any EventLoop
    let driver: CurlDriver
    let url: String
    let method: String
    let connectTimeoutMs: Int
    let totalTimeoutMs: Int
    /// Shares the provider's array; curl copies it into the handle (on the curl thread).
    let certificateAuthoritiesPEM: [UInt8]?
    let http2: Bool

    /// The request began to go out (libcurl's pre-request point, on the curl thread): from then
    /// on the provider may have it, and may bill it. Read on the event loop.
    let requestWentOut = Atomic<Bool>(false)

    // MARK: event loop

    /// Dropped after the end is delivered, so an owner holding its
    /// `UpstreamTransfer` does not keep itself alive through a cycle.
    private var handler: (any UpstreamResponseHandler)?
    private var delivery = DeliveryStateMachine()

    // MARK: curl thread

    var curlState = CurlTransferStateMachine()
    var easy: CurlEasyHandle?
    /// Slot in the driver's list of running transfers.
    var activeIndex = -1
    /// Already in the driver's list of transfers with something to deliver.
    var isDirty = false
    private var headers: CurlHeaderList?
    private var body: UnsafeMutableRawBufferPointer?
    private var parser = ResponseHeadParser()
    private var headSeen = false
    private var pending = Delivery()
    private var bytesReceived = 0
    /// `https://host:port` of an HTTP/2 transfer, whose connection the ramp finds (`ConnectionRamp`).
    var rampOrigin: String?
    var seat = ConnectionRamp<CurlTransfer>.Seat.none
    /// When its total timeout passes, counted from its start (a wait on the ramp counts). The
    /// driver keeps it, not libcurl (`CurlDriver.expireOverdue`).
    var deadline: NIODeadline?
    /// The ramp refused the connection libcurl's own second send of this call would have opened.
    var refusedStreamResendHeld = false
    /// libcurl's second send after the answer had started was stopped (`maySend`).
    private var resendAfterAnswerRefused = false
    /// When the request first went out (HTTP/1.1 transfers only: see `maySend`).
    private var firstSentAt: NIODeadline?
    /// Set when libcurl's own second send was refused (`maySend`): how long after the request
    /// first went out.
    private var resendRefusedAfterMicros: Int64?

    init(request: UpstreamRequest, eventLoop: any EventLoop, handler: any UpstreamResponseHandler,
         driver: CurlDriver) {
        self.eventLoop = eventLoop
        self.driver = driver
        self.handler = handler
        url = request.url
        method = request.method.uppercased()
        connectTimeoutMs = request.connectTimeoutMs
        totalTimeoutMs = request.totalTimeoutMs
        certificateAuthoritiesPEM = request.certificateAuthoritiesPEM
        http2 = request.http2
        // Built here, on the caller's thread, to keep string work off the
        // single curl thread.
        headers = CurlHeaderList(request.headers)
        if request.body.readableBytes > 0 {
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: request.body.readableBytes, alignment: 1)
            request.body.withUnsafeReadableBytes { copy.copyMemory(from: $0) }
            body = copy
        }
    }

    deinit {
        freeRequestMemory()
    }

    // MARK: - Event loop side

    /// Forwards what a curl pass produced, as far as the owner still wants it.
    func deliver(_ d: Delivery) {
        eventLoop.assertInEventLoop()
        if let head = d.head, delivery.headArrived() {
            handler?.upstreamHead(head)
        }
        // Re-checked after each call: the handler may cancel from inside one.
        if let chunk = d.body, delivery.bodyArrived() {
            handler?.upstreamBody(chunk, endFollows: d.end != nil)
        }
        if let end = d.end, let result = delivery.endArrived(end, cancelled: UpstreamError.cancelled) {
            let handler = self.handler
            self.handler = nil
            handler?.upstreamEnd(result)
        }
    }

    func cancel() {
        onEventLoop { transfer in
            if transfer.delivery.cancel() { transfer.driver.submit(.cancel(transfer)) }
        }
    }

    func pause() {
        onEventLoop { transfer in
            if transfer.delivery.pause() { transfer.driver.submit(.pause(transfer)) }
        }
    }

    func resume() {
        onEventLoop { transfer in
            if transfer.delivery.resume() { transfer.driver.submit(.resume(transfer)) }
        }
    }

    private func onEventLoop(_ body: @escaping @Sendable (CurlTransfer) -> Void) {
        if eventLoop.inEventLoop {
            body(self)
        } else {
            eventLoop.execute { body(self) }
        }
    }

    // MARK: - Curl thread side

    /// Sets the options of this transfer on `easy`. Returns the first failure. `driverAllowsHTTP2`:
    /// the driver's setting, which this transfer's own `http2` can only turn off.
    func configure(_ easy: CurlEasyHandle, driverAllowsHTTP2: Bool, now: NIODeadline) -> CURLcode {
        let http2 = driverAllowsHTTP2 && self.http2
        let h = easy.raw
        let me = Unmanaged.passUnretained(self).toOpaque()
        var rc = CURLE_OK
        func set(_ code: CURLcode) { if rc == CURLE_OK { rc = code } }

        set(tc_easy_setopt_string(h, CURLOPT_URL, url))
        set(tc_easy_setopt_pointer(h, CURLOPT_PRIVATE, me))
        set(tc_easy_setopt_pointer(h, CURLOPT_ERRORBUFFER, easy.errorBuffer))
        set(tc_easy_setopt_write_callback(h, CURLOPT_WRITEFUNCTION, curlBodyCallback))
        set(tc_easy_setopt_pointer(h, CURLOPT_WRITEDATA, me))
        set(tc_easy_setopt_write_callback(h, CURLOPT_HEADERFUNCTION, curlHeaderCallback))
        set(tc_easy_setopt_pointer(h, CURLOPT_HEADERDATA, me))
        set(tc_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1))
        set(tc_easy_setopt_long(h, CURLOPT_TCP_NODELAY, 1))
        set(tc_easy_setopt_long(h, CURLOPT_TCP_KEEPALIVE, 1))
        // Only ever the configured upstream: no proxy from the environment,
        // no redirects, no other schemes.
        set(tc_easy_setopt_string(h, CURLOPT_PROXY, ""))
        set(tc_easy_setopt_long(h, CURLOPT_FOLLOWLOCATION, 0))
        set(tc_easy_setopt_string(h, CURLOPT_PROTOCOLS_STR, "http,https"))
        set(tc_easy_setopt_long(
            h, CURLOPT_HTTP_VERSION, http2 ? Int(CURL_HTTP_VERSION_2TLS) : Int(CURL_HTTP_VERSION_1_1)))
        if rampOrigin != nil {
            // Join a connection still negotiating HTTP/2 rather than open another.
            set(tc_easy_setopt_long(h, CURLOPT_PIPEWAIT, 1))
            // Where the call's connection comes from and goes (`ConnectionRamp`).
            set(tc_easy_setopt_sockopt_callback(h, CURLOPT_SOCKOPTFUNCTION, curlSocketOpenedCallback))
            set(tc_easy_setopt_pointer(h, CURLOPT_SOCKOPTDATA, me))
            set(tc_easy_setopt_closesocket_callback(h, CURLOPT_CLOSESOCKETFUNCTION, curlSocketClosedCallback))
            set(tc_easy_setopt_pointer(h, CURLOPT_CLOSESOCKETDATA, Unmanaged.passUnretained(driver).toOpaque()))
        }
        // HTTP/2: tells the ramp which connection the call rides. HTTP/1.1: libcurl sends a call
        // whose reused connection ended without an answer again by itself (on another pooled
        // connection, or a new one), however long the provider had it; this holds it to the
        // window of `CurlFailure.isStaleConnection` (see `maySend`).
        set(tc_easy_setopt_prereq_callback(h, CURLOPT_PREREQFUNCTION, curlPrerequestCallback))
        set(tc_easy_setopt_pointer(h, CURLOPT_PREREQDATA, me))
        // Within what is left of the total deadline, as libcurl's own total timeout did: libcurl
        // gives each of a host's addresses a share of it, so a later address is still tried.
        var connectMs = connectTimeoutMs
        if let deadline {
            let left = max(1, Int((deadline - now).nanoseconds / 1_000_000))
            connectMs = connectMs > 0 ? min(connectMs, left) : left
        }
        if connectMs > 0 { set(tc_easy_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, connectMs)) }
        set(tc_easy_setopt_slist(h, CURLOPT_HTTPHEADER, headers?.head))
        if let certificateAuthoritiesPEM {
            // Copied by curl, which compares it when matching a pooled connection to this one.
            certificateAuthoritiesPEM.withUnsafeBytes { pem in
                var blob = curl_blob(data: UnsafeMutableRawPointer(mutating: pem.baseAddress), len: pem.count,
                                     flags: UInt32(CURL_BLOB_COPY))
                set(tc_easy_setopt_pointer(h, CURLOPT_CAINFO_BLOB, &blob))
            }
            // These only: the blob replaces the default CA file, but Debian's libcurl would
            // still look certificates up in its default CA directory (/etc/ssl/certs).
            set(tc_easy_setopt_string(h, CURLOPT_CAPATH, nil))
            set(tc_easy_setopt_string(h, CURLOPT_CAINFO, nil))
        }

        switch method {
        case "GET":
            set(tc_easy_setopt_long(h, CURLOPT_HTTPGET, 1))
        case "HEAD":
            set(tc_easy_setopt_long(h, CURLOPT_NOBODY, 1))
        default:
            // POSTFIELDS makes it a POST with a body from memory (an empty one
            // is still sent as Content-Length: 0); other verbs rename it.
            set(tc_easy_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body?.count ?? 0)))
            set(tc_easy_setopt_pointer(h, CURLOPT_POSTFIELDS, body?.baseAddress ?? UnsafeMutableRawPointer(mutating: Self.emptyBody)))
            if method != "POST" { set(tc_easy_setopt_string(h, CURLOPT_CUSTOMREQUEST, method)) }
        }
        return rc
    }

    /// One header line from curl's header callback.
    func receiveHeaderLine(_ line: UnsafeRawBufferPointer) {
        if let head = parser.parse(line: line) {
            headSeen = true
            pending.head = head
            driver.markDirty(self)
        }
    }

    /// Body bytes from curl's write callback.
    func receiveBody(_ bytes: UnsafeRawBufferPointer) {
        if !headSeen { synthesizeHead() }
        if pending.body == nil {
            pending.body = driver.allocator.buffer(capacity: bytes.count)
        }
        pending.body!.writeBytes(bytes)
        bytesReceived += bytes.count
        driver.markDirty(self)
    }

    /// A successful transfer must have delivered a head; call before detaching
    /// the handle (the status comes from it).
    func ensureHead() {
        if !headSeen { synthesizeHead() }
    }

    /// Records the end; the driver has already removed the handle or never added it.
    func finish(_ result: Result<UpstreamTiming, UpstreamError>) {
        pending.end = result
        freeRequestMemory()
        driver.markDirty(self)
    }

    /// Whether curl may send the request now (its pre-request callback). Never once an answer
    /// has started: libcurl sends a call again after its head when the provider resets an HTTP/2
    /// stream with HTTP_1_1_REQUIRED (it retries on HTTP/1.1), which would splice a second answer
    /// into the client's, and send a body the transfer has let go (`releaseSentBody`). Otherwise,
    /// HTTP/2: always, and the ramp learns which connection it rides. HTTP/1.1: always the first
    /// time; a second time (libcurl's own re-send after the connection ended without an answer)
    /// only within the stale window of the first send.
    func maySend(connection: () -> ConnectionRamp<CurlTransfer>.Address) -> Bool {
        guard !refusesResendAfterAnswer() else { return false }
        guard rampOrigin == nil else {
            driver.requestGoingOut(self, on: connection())
            requestWentOut.store(true, ordering: .relaxed)
            // Before an answer, libcurl sends a call again on HTTP/2 only when a GOAWAY refused
            // its stream: always safe.
            return true
        }
        let now = NIODeadline.now()
        guard let firstSentAt else {
            firstSentAt = now
            requestWentOut.store(true, ordering: .relaxed)
            return true
        }
        let waited = (now - firstSentAt).nanoseconds / 1_000
        guard waited > CurlFailure.staleWindowMicros else { return true }
        resendRefusedAfterMicros = waited
        return false
    }

    /// Whether curl may open a connection for this transfer (HTTP/2 transfers' socket callback):
    /// not for a send after the answer started (see `maySend`).
    func mayOpenConnection() -> Bool {
        !refusesResendAfterAnswer()
    }

    /// True, and remembered for the error, when the answer has started: libcurl's send (or the
    /// connection for it) would be a second one.
    private func refusesResendAfterAnswer() -> Bool {
        guard headSeen else { return false }
        resendAfterAnswerRefused = true
        return true
    }

    /// The error a failed transfer reports, from curl's code and what was seen of the answer.
    func error(code: CURLcode, easy: CurlEasyHandle, detail: String? = nil) -> UpstreamError {
        var connects = 0, headerBytes = 0
        var pretransfer: curl_off_t = 0, total: curl_off_t = 0
        _ = tc_easy_getinfo_long(easy.raw, CURLINFO_NUM_CONNECTS, &connects)
        _ = tc_easy_getinfo_long(easy.raw, CURLINFO_HEADER_SIZE, &headerBytes)
        _ = tc_easy_getinfo_off(easy.raw, CURLINFO_PRETRANSFER_TIME_T, &pretransfer)
        _ = tc_easy_getinfo_off(easy.raw, CURLINFO_TOTAL_TIME_T, &total)
        return CurlRuntime.error(CurlFailure(
            code: code, detail: detail ?? easy.errorDetail, reusedConnection: connects == 0,
            answerStarted: headSeen || headerBytes > 0,  // body bytes set headSeen (synthesizeHead)
            waitedMicros: Int64(total) - Int64(pretransfer), requestSent: pretransfer > 0,
            resendRefusedAfterMicros: resendRefusedAfterMicros,
            refusedStreamResendHeld: refusedStreamResendHeld, resendAfterAnswerRefused: resendAfterAnswerRefused))
    }

    /// Its deadline passed: on the ramp (`easy` nil, never sent) or running.
    func deadlineError(easy: CurlEasyHandle?) -> UpstreamError {
        let limit = "\(totalTimeoutMs) ms (timeout_ms)"
        guard let easy else {
            return .timeout("no room on an HTTP/2 connection to the provider within \(limit)", requestSent: false)
        }
        let detail = requestWentOut.load(ordering: .relaxed)
            ? "the answer did not end within \(limit), \(bytesReceived) bytes of it in"
            : "the connection to the provider was not ready within \(limit)"
        return error(code: CURLE_OPERATION_TIMEDOUT, easy: easy, detail: detail)
    }

    /// Reads the timing of the finished transfer (before its handle is reset).
    func timing(of easy: CurlEasyHandle) -> UpstreamTiming {
        var connect: curl_off_t = 0, firstByte: curl_off_t = 0, total: curl_off_t = 0
        var connects = 0
        _ = tc_easy_getinfo_off(easy.raw, CURLINFO_CONNECT_TIME_T, &connect)
        _ = tc_easy_getinfo_off(easy.raw, CURLINFO_STARTTRANSFER_TIME_T, &firstByte)
        _ = tc_easy_getinfo_off(easy.raw, CURLINFO_TOTAL_TIME_T, &total)
        _ = tc_easy_getinfo_long(easy.raw, CURLINFO_NUM_CONNECTS, &connects)
        return UpstreamTiming(
            connectMicros: Int64(connect), firstByteMicros: Int64(firstByte), totalMicros: Int64(total),
            bytesReceived: bytesReceived, reusedConnection: connects == 0)
    }

    /// Hands over what accumulated since the last pass (after the pass: curl is not inside this
    /// transfer's callbacks).
    func takeDelivery() -> Delivery {
        isDirty = false
        if headSeen, body != nil, pending.end == nil { releaseSentBody() }
        defer { pending = Delivery() }
        return pending
    }

    /// Once the final head has come and the whole body has gone out, the request is never sent
    /// again (libcurl sends a call again only when it got no answer), so a stream that lasts
    /// minutes keeps neither the body copy nor libcurl's upload buffer: 64 KiB it allocates for
    /// an HTTP/2 body (or an HTTP/1.1 one over 64 KiB) and keeps until the transfer ends, of
    /// which the body filled what it spans. Setting its size frees it (allocated again by the
    /// next upload); POSTFIELDS is pointed away from the copy first, so curl holds no pointer
    /// to freed memory. A head that comes before the whole body went out (an early refusal):
    /// checked again at the transfer's next deliveries. Only on the libcurl this was read
    /// against (`CurlRuntime.releasesSentBodies`).
    private func releaseSentBody() {
        guard CurlRuntime.releasesSentBodies, let body, let easy else { return }
        var sent: curl_off_t = 0
        guard tc_easy_getinfo_off(easy.raw, CURLINFO_SIZE_UPLOAD_T, &sent) == CURLE_OK, sent >= body.count else { return }
        _ = tc_easy_setopt_off(easy.raw, CURLOPT_POSTFIELDSIZE_LARGE, 0)
        _ = tc_easy_setopt_pointer(easy.raw, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: Self.emptyBody))
        _ = tc_easy_setopt_long(easy.raw, CURLOPT_UPLOAD_BUFFERSIZE, Self.uploadBufferBytes)
        body.deallocate()
        self.body = nil
        driver.sentBodiesReleased.add(1, ordering: .relaxed)
    }

    /// libcurl's default upload buffer size (CURLOPT_UPLOAD_BUFFERSIZE), kept as it was.
    private static let uploadBufferBytes = 64 << 10

    /// A response without a parsable status line (curl rejects HTTP/0.9, so
    /// this is defensive): report curl's status with no headers.
    private func synthesizeHead() {
        headSeen = true
        var code = 0
        if let easy { _ = tc_easy_getinfo_long(easy.raw, CURLINFO_RESPONSE_CODE, &code) }
        pending.head = UpstreamHead(status: code)
    }

    private func freeRequestMemory() {
        if let headers {
            headers.deallocate()
            self.headers = nil
        }
        if let body {
            body.deallocate()
            self.body = nil
        }
    }

    /// A non-NULL body for empty POSTs: NULL would make curl read stdin.
    /// Never written, so sharing it across threads is safe.
    nonisolated(unsafe) private static let emptyBody: UnsafeRawPointer = {
        let p = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)
        p.storeBytes(of: 0, as: UInt8.self)
        return UnsafeRawPointer(p)
    }()
}
