import CCurl
import Logging
import NIOCore
import Synchronization

/// The one thread that runs every upstream transfer through a curl multi handle.
///
/// Threading rule: only the driver thread touches curl handles (the multi
/// handle, every easy handle) and the "curl thread" state of transfers. Other
/// threads talk to it only through `submit`, which appends to a locked queue
/// and calls `curl_multi_wakeup` (documented thread-safe) when the queue goes
/// from empty to non-empty — one wake per batch, not per command. From an
/// event loop, the wake waits for the end of the loop's current pass, so
/// that every request read in one pass reaches curl in one wake (each wake
/// preempts the event loop when both share a core). The multi handle is
/// created and configured in `init`, before the thread exists.
///
/// Results go back in one hop per event loop per curl pass: everything the
/// pass produced for the transfers of one loop (heads, body bytes, ends) is
/// handed over in a single `EventLoop.execute`.
final class CurlDriver: @unchecked Sendable {
    enum Command {
        case start(CurlTransfer)
        case cancel(CurlTransfer)
        case pause(CurlTransfer)
        case resume(CurlTransfer)
        /// Work that must run on the curl thread itself (`UpstreamClient.onCurlThread`).
        case perform(@Sendable () -> Void)
        case shutdown

        /// The transfer a command is about (its event loop is where the command was issued).
        var transfer: CurlTransfer? {
            switch self {
            case .start(let t), .cancel(let t), .pause(let t), .resume(let t): return t
            case .perform, .shutdown: return nil
            }
        }
    }

    let allocator = ByteBufferAllocator()
    private let configuration: UpstreamConfiguration
    private let logger: Logger
    private let multi: UnsafeMutableRawPointer
    private var thread: DriverThread?

    // Shared: guarded by `lock`.
    private let lock = PThreadLock()
    private var queue: [Command] = []
    private var accepting = true
    /// An event loop will wake the thread at the end of its pass (`wakeAfterPass`).
    private var wakeScheduled = false
    /// `curl_multi_wakeup` calls made for commands (tests read it).
    private var wakeups = 0

    // Curl thread only.
    private var running: [CurlTransfer] = []
    private var dirty: [CurlTransfer] = []
    private var commands: [Command] = []
    private var pool: CurlEasyHandlePool
    private var ramp: ConnectionRamp<CurlTransfer>
    /// When `expireOverdue` looks next: no transfer's deadline comes before it, less
    /// `deadlineGranularity`. A transfer that ends leaves it early, which costs one scan that
    /// finds nothing.
    private var nextDeadline = NIODeadline.distantFuture
    /// How late a deadline may be acted on: a provider that stalls passes the deadlines of many
    /// calls one after another, each a scan of every call running.
    private static let deadlineGranularity = TimeAmount.milliseconds(20)

    init(configuration: UpstreamConfiguration, logger: Logger) {
        CurlRuntime.initialize()
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed") }
        self.multi = multi
        self.configuration = configuration
        self.logger = logger
        pool = CurlEasyHandlePool(capacity: configuration.easyHandlePoolSize,
                                  idleRelease: configuration.easyHandleIdleRelease)
        ramp = ConnectionRamp(streamsPerConnection: configuration.streamsPerConnection)
        queue.reserveCapacity(64)
        commands.reserveCapacity(64)
        _ = tc_multi_setopt_long(multi, CURLMOPT_PIPELINING, configuration.http2 ? CURLPIPE_MULTIPLEX : 0)
        // Said explicitly: the connection ramp counts free streams with it.
        _ = tc_multi_setopt_long(multi, CURLMOPT_MAX_CONCURRENT_STREAMS, configuration.streamsPerConnection)
        if configuration.maxHostConnections > 0 {
            _ = tc_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, configuration.maxHostConnections)
        }
        if configuration.maxTotalConnections > 0 {
            _ = tc_multi_setopt_long(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, configuration.maxTotalConnections)
        }
        if configuration.connectionCacheSize > 0 {
            _ = tc_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, configuration.connectionCacheSize)
        }
        thread = DriverThread(name: "tokenctl-curl") { [self] in run() }
    }

    /// Hands a command to the curl thread. Returns false after shutdown.
    /// Called on its transfer's event loop, the thread is woken once that
    /// loop's current pass ends (its other channels may have requests for
    /// curl too).
    @discardableResult
    func submit(_ command: Command) -> Bool {
        let eventLoop = command.transfer?.eventLoop
        let deferWake = eventLoop?.inEventLoop ?? false
        let (accepted, scheduleWake) = lock.withLock { () -> (Bool, Bool) in
            guard accepting else { return (false, false) }
            queue.append(command)
            // The thread drains the whole queue at once, so only the first
            // command after a drain needs to wake it (or a scheduled wake
            // covers it). Waking under the lock keeps it ordered before the
            // multi handle's cleanup.
            guard queue.count == 1, !wakeScheduled else { return (true, false) }
            guard deferWake else {
                wake()
                return (true, false)
            }
            wakeScheduled = true
            return (true, true)
        }
        // A task queued from inside the loop runs in this pass, after its I/O.
        if scheduleWake, let eventLoop { eventLoop.execute { self.wakeAfterPass() } }
        return accepted
    }

    /// The wake an event loop deferred to the end of its pass; none if the
    /// thread drained the queue meanwhile (it woke for a socket) or shut down.
    /// When the thread drained mid-pass, a later command scheduled another of
    /// these: the first to run wakes for both, so the other finds the flag
    /// clear and does not wake the thread a second time.
    private func wakeAfterPass() {
        lock.withLock {
            guard wakeScheduled else { return }
            wakeScheduled = false
            if accepting && !queue.isEmpty { wake() }
        }
    }

    /// Under `lock`.
    private func wake() {
        wakeups += 1
        curl_multi_wakeup(multi)
    }

    /// Kept easy handles freed for going unused (tests read it).
    let unusedHandlesFreed = Atomic<Int>(0)
    /// Request bodies let go while their answer still streamed (tests read it).
    let sentBodiesReleased = Atomic<Int>(0)

    /// How many times commands woke the thread so far.
    var commandWakeups: Int { lock.withLock { wakeups } }

    /// Cancels every transfer, waits for the thread to finish and frees curl.
    /// Only the first call waits; call it from outside the curl thread.
    func shutdown() {
        let first = lock.withLock {
            guard accepting else { return false }
            accepting = false
            queue.append(.shutdown)
            curl_multi_wakeup(multi)
            return true
        }
        if first { thread?.join() }
    }

    // MARK: - Curl thread

    /// Notes that `transfer` has something to deliver after this pass.
    func markDirty(_ transfer: CurlTransfer) {
        guard !transfer.isDirty else { return }
        transfer.isDirty = true
        dirty.append(transfer)
    }

    private func run() {
        var stillRunning: Int32 = 0
        var stop = false
        while !stop {
            lock.withLock {
                swap(&queue, &commands)
                // Everything queued is taken: a wake an event loop still owes is moot (it
                // wakes only for commands queued after this), and one that a loop never paid
                // (it shut down first) cannot keep later commands waiting for poll's timeout.
                wakeScheduled = false
            }
            let now = NIODeadline.now()
            for command in commands {
                switch command {
                case .start(let t): begin(t, now: now)
                case .cancel(let t): abort(t)
                case .pause(let t): pause(t)
                case .resume(let t): resume(t)
                case .perform(let work): work()
                case .shutdown: stop = true
                }
            }
            commands.removeAll(keepingCapacity: true)
            if stop { break }

            check(curl_multi_perform(multi, &stillRunning), "curl_multi_perform")
            collectCompletions()
            expireOverdue(now: now)
            // Added now, they make the poll below return at once (curl runs new handles at once).
            for (transfer, seat) in ramp.release() {
                transfer.seat = seat
                add(transfer, now: now)
            }
            flush()
            let freed = pool.freeUnused(now: .now)
            if freed > 0 { unusedHandlesFreed.add(freed, ordering: .relaxed) }
            // Sleeps until socket activity, curl's next timer, a wakeup or the next deadline.
            check(curl_multi_poll(multi, nil, 0, pollTimeoutMs(now: now), nil), "curl_multi_poll")
        }
        for transfer in running.reversed() { abort(transfer) }
        for transfer in ramp.takeAllWaiting() {
            transfer.seat = .none
            abort(transfer)
        }
        flush()
        pool.drain()
        curl_multi_cleanup(multi)
    }

    /// Multi-level failures are not tied to one transfer: log them (they mean
    /// out of memory or a bug), and keep serving.
    private func check(_ code: CURLMcode, _ call: String) {
        guard code != CURLM_OK else { return }
        logger.error("\(call) failed", metadata: ["code": "\(code.rawValue)", "message": "\(String(cString: curl_multi_strerror(code)))"])
    }

    private func begin(_ transfer: CurlTransfer, now: NIODeadline) {
        if transfer.totalTimeoutMs > 0 {
            let deadline = now + .milliseconds(Int64(transfer.totalTimeoutMs))
            transfer.deadline = deadline
            nextDeadline = min(nextDeadline, deadline)
        }
        if configuration.http2 && transfer.http2,
           let origin = ConnectionRamp<CurlTransfer>.origin(of: transfer.url) {
            transfer.rampOrigin = origin
            guard ramp.arrive(transfer, origin: origin, seat: &transfer.seat) else {
                transfer.curlState.hold()
                return
            }
        }
        add(transfer, now: now)
    }

    private func add(_ transfer: CurlTransfer, now: NIODeadline) {
        if let deadline = transfer.deadline, deadline <= now {  // passed while it waited on the ramp
            fail(transfer, transfer.deadlineError(easy: nil))
            return
        }
        guard let easy = pool.take() else {
            fail(transfer, .transport(code: Int(CURLE_OUT_OF_MEMORY.rawValue), message: "curl_easy_init failed"))
            return
        }
        transfer.easy = easy
        let rc = transfer.configure(easy, driverAllowsHTTP2: configuration.http2, now: now)
        guard rc == CURLE_OK else {
            fail(transfer, CurlRuntime.error(CurlFailure(code: rc, detail: easy.errorDetail)))
            return
        }
        let mrc = curl_multi_add_handle(multi, easy.raw)
        guard mrc == CURLM_OK else {
            let message = String(cString: curl_multi_strerror(mrc))
            fail(transfer, .transport(code: Int(mrc.rawValue), message: message))
            return
        }
        if transfer.curlState.added() { curl_easy_pause(easy.raw, CURLPAUSE_RECV) }
        transfer.activeIndex = running.count
        running.append(transfer)
    }

    /// Setup failed before the handle joined the multi handle.
    private func fail(_ transfer: CurlTransfer, _ error: UpstreamError) {
        logger.debug("upstream transfer setup failed", metadata: ["url": "\(transfer.url)", "error": "\(error)"])
        _ = transfer.curlState.completed()
        leaveRamp(transfer)
        if let easy = transfer.easy {
            transfer.easy = nil
            pool.give(easy)
        }
        transfer.finish(.failure(error))
    }

    /// Removes the handle mid-transfer. libcurl closes an HTTP/1 connection
    /// removed before its response ended (it cannot be reused); on HTTP/2
    /// only the stream is reset.
    ///
    /// libcurl 7.88 queues that RST_STREAM and sends it only when another transfer next uses
    /// the connection (curl issue #17611): a stream alone on its connection went on upstream,
    /// the provider generating (and billing) an answer nobody reads. Forbidding reuse makes
    /// libcurl close a connection the stream was alone on, which the provider sees at once; one
    /// that other transfers still use is left open (libcurl closes only a connection no transfer
    /// uses), and their traffic sends the reset.
    private func abort(_ transfer: CurlTransfer) {
        guard transfer.curlState.cancel() else { return }
        detachUnfinished(transfer)
        transfer.finish(.failure(.cancelled))
    }

    /// `detach` for a transfer ended before its answer: its connection closes when no other
    /// transfer uses it (see `abort`).
    private func detachUnfinished(_ transfer: CurlTransfer, failed: Bool = false) {
        if let easy = transfer.easy { _ = tc_easy_setopt_long(easy.raw, CURLOPT_FORBID_REUSE, 1) }
        detach(transfer, failed: failed)
    }

    /// Ends the transfers whose total timeout passed. The driver keeps that deadline, not libcurl
    /// (CURLOPT_TIMEOUT_MS): libcurl 7.88 ends a late HTTP/2 stream as it removes one, with the
    /// reset held until another transfer uses the connection (see `abort`), and the provider went
    /// on with an answer nobody reads. Ended here, the stream's connection is closed as a left
    /// one's is.
    private func expireOverdue(now: NIODeadline) {
        guard now >= nextDeadline else { return }
        nextDeadline = .distantFuture
        // From the end: `detach` moves the last transfer into the slot it frees, one already seen.
        var index = running.count
        while index > 0 {
            index -= 1
            let transfer = running[index]
            guard let deadline = transfer.deadline else { continue }
            guard deadline <= now else {
                nextDeadline = min(nextDeadline, deadline)
                continue
            }
            guard transfer.curlState.completed(), let easy = transfer.easy else { continue }
            let error = transfer.deadlineError(easy: easy)
            detachUnfinished(transfer, failed: true)
            transfer.finish(.failure(error))
        }
        for transfer in ramp.waiting {
            guard let deadline = transfer.deadline else { continue }
            if deadline <= now {
                fail(transfer, transfer.deadlineError(easy: nil))
            } else {
                nextDeadline = min(nextDeadline, deadline)
            }
        }
        if nextDeadline != .distantFuture { nextDeadline = max(nextDeadline, now + Self.deadlineGranularity) }
    }

    /// How long the poll may sleep: at most a second, and not past the next deadline.
    private func pollTimeoutMs(now: NIODeadline) -> Int32 {
        guard nextDeadline != .distantFuture else { return 1000 }
        let ms = ((nextDeadline - now).nanoseconds + 999_999) / 1_000_000
        return Int32(max(0, min(1000, ms)))
    }

    private func pause(_ transfer: CurlTransfer) {
        guard transfer.curlState.pause(), let easy = transfer.easy else { return }
        curl_easy_pause(easy.raw, CURLPAUSE_RECV)
    }

    private func resume(_ transfer: CurlTransfer) {
        // May call the write callback at once with data curl held back.
        guard transfer.curlState.resume(), let easy = transfer.easy else { return }
        curl_easy_pause(easy.raw, CURLPAUSE_CONT)
    }

    private func collectCompletions() {
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle else { continue }
            // The message is freed by curl_multi_remove_handle: read it first.
            let code = message.pointee.data.result
            var raw: UnsafeMutableRawPointer?
            _ = tc_easy_getinfo_pointer(handle, CURLINFO_PRIVATE, &raw)
            guard let raw else { continue }
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(raw).takeUnretainedValue()
            guard transfer.curlState.completed(), let easy = transfer.easy else { continue }
            let result: Result<UpstreamTiming, UpstreamError>
            if code == CURLE_OK {
                transfer.ensureHead()
                result = .success(transfer.timing(of: easy))
            } else {
                result = .failure(transfer.error(code: code, easy: easy))
            }
            detach(transfer, failed: code != CURLE_OK)
            transfer.finish(result)
        }
    }

    /// Takes a running transfer's handle out of the multi handle and back to the pool. `failed`:
    /// curl ended it with an error (not a cancel).
    private func detach(_ transfer: CurlTransfer, failed: Bool = false) {
        leaveRamp(transfer, failed: failed)
        guard let easy = transfer.easy else { return }
        curl_multi_remove_handle(multi, easy.raw)
        transfer.easy = nil
        pool.give(easy)
        let index = transfer.activeIndex
        let last = running.removeLast()
        if last !== transfer {
            running[index] = last
            last.activeIndex = index
        }
        transfer.activeIndex = -1
    }

    // MARK: Connection ramp (HTTP/2 transfers; called from curl's callbacks too)

    private func leaveRamp(_ transfer: CurlTransfer, failed: Bool = false) {
        guard let origin = transfer.rampOrigin else { return }
        ramp.ended(transfer, origin: origin, seat: &transfer.seat, failed: failed)
    }

    func socketOpened(_ fd: curl_socket_t, by transfer: CurlTransfer) -> Bool {
        guard let origin = transfer.rampOrigin else { return true }
        // libcurl connects before its pre-request callback: a re-send after the answer started
        // (`CurlTransfer.maySend`) is stopped here already, before a connection is opened for it.
        guard transfer.mayOpenConnection() else { return false }
        let allowed = ramp.socketOpened(fd, origin: origin, seat: &transfer.seat)
        if !allowed { transfer.refusedStreamResendHeld = true }
        return allowed
    }

    func requestGoingOut(_ transfer: CurlTransfer, on address: ConnectionRamp<CurlTransfer>.Address) {
        guard let origin = transfer.rampOrigin else { return }
        ramp.requestGoingOut(on: address, origin: origin, seat: &transfer.seat)
    }

    func socketClosed(_ fd: curl_socket_t) {
        ramp.socketClosed(fd)
    }

    /// Sends what this pass produced: one hop per event loop.
    private func flush() {
        guard !dirty.isEmpty else { return }
        if dirty.count == 1 {
            let transfer = dirty[0]
            let delivery = transfer.takeDelivery()
            dirty.removeAll(keepingCapacity: true)
            transfer.eventLoop.execute { transfer.deliver(delivery) }
            return
        }
        var batches: [(loop: any EventLoop, items: [(CurlTransfer, Delivery)])] = []
        for transfer in dirty {
            let item = (transfer, transfer.takeDelivery())
            if let i = batches.firstIndex(where: { $0.loop === transfer.eventLoop }) {
                batches[i].items.append(item)
            } else {
                batches.append((transfer.eventLoop, [item]))
            }
        }
        dirty.removeAll(keepingCapacity: true)
        for batch in batches {
            let items = batch.items
            batch.loop.execute {
                for (transfer, delivery) in items { transfer.deliver(delivery) }
            }
        }
    }
}
