import CCurl

/// A `CURL*` easy handle and its error buffer (which must outlive every
/// transfer run on the handle, so it lives as long as the handle).
///
/// Threading rule: only the curl driver thread touches curl handles. The
/// type is `@unchecked Sendable` solely so it can be created with the driver
/// and parked in its pool; it is never used from another thread.
final class CurlEasyHandle: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
    let errorBuffer: UnsafeMutablePointer<CChar>

    init?() {
        guard let raw = curl_easy_init() else { return nil }
        self.raw = raw
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(raw)
        errorBuffer.deallocate()
    }

    /// What curl wrote in the error buffer about the last failure; nil if nothing.
    var errorDetail: String? { errorBuffer[0] == 0 ? nil : String(cString: errorBuffer) }

    /// Clears every option (connections stay in the multi handle's cache).
    func reset() {
        curl_easy_reset(raw)
        errorBuffer[0] = 0
    }
}

/// Easy handles kept for reuse: `curl_easy_reset` is cheaper than
/// `curl_easy_init` and keeps per-handle caches warm (TLS sessions among them). Curl thread only.
///
/// A kept handle may keep its buffers too: after 1,000 HTTP/2 streams had closed, libcurl 7.88
/// still held the 64 KiB upload and 16 KiB receive buffers of each of the 64 kept handles
/// (heaptrack). Kept after a burst, they sit among the burst's other buffers and hold pages the
/// allocator cannot give back. So handles not taken again for `idleRelease` are
/// freed, the least recently used first, down to `keptWhenIdle`: the pool follows recent peak
/// use under any load, and a trickle of calls keeps its few warm handles.
struct CurlEasyHandlePool {
    /// Ordered by the time each was given back: `take` pops the most recent, so the front is the
    /// least recently used.
    private var idle: [(handle: CurlEasyHandle, since: ContinuousClock.Instant)] = []
    let capacity: Int
    let idleRelease: Duration
    let keptWhenIdle: Int

    init(capacity: Int, idleRelease: Duration = .seconds(1), keptWhenIdle: Int = 4) {
        self.capacity = max(0, capacity)
        self.idleRelease = idleRelease
        self.keptWhenIdle = max(0, keptWhenIdle)
        idle.reserveCapacity(self.capacity)
    }

    var count: Int { idle.count }

    mutating func take() -> CurlEasyHandle? {
        idle.popLast()?.handle ?? CurlEasyHandle()
    }

    /// Call after `curl_multi_remove_handle`.
    mutating func give(_ handle: CurlEasyHandle, now: ContinuousClock.Instant = .now) {
        guard idle.count < capacity else { return }  // deinit cleans it up
        handle.reset()
        idle.append((handle, now))
    }

    /// Frees the handles given back at least `idleRelease` before `now` and not taken since,
    /// keeping `keptWhenIdle`; returns how many. Called on every pass of the curl thread (the
    /// clock is read only when there is more than `keptWhenIdle` to look at).
    mutating func freeUnused(now: @autoclosure () -> ContinuousClock.Instant) -> Int {
        let spare = idle.count - keptWhenIdle
        guard spare > 0 else { return 0 }
        let now = now()
        var stale = 0
        while stale < spare, now - idle[stale].since >= idleRelease { stale += 1 }
        if stale > 0 { idle.removeFirst(stale) }
        return stale
    }

    mutating func drain() { idle.removeAll() }
}
