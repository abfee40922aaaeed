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
/// `curl_easy_init` and keeps per-handle caches warm. Curl thread only.
///
/// A kept handle keeps its buffers too (libcurl 7.88 frees its 64 KiB upload and 16 KiB
/// receive buffers only with the handle), and those sit among the buffers of every other
/// transfer of the burst that made them: the allocator cannot give back the pages around
/// them. So the pool empties once no transfer has run for `idleRelease` (1,000 streams closed:
/// 1.3 MB more of the process given back).
struct CurlEasyHandlePool {
    private var idle: [CurlEasyHandle] = []
    let capacity: Int
    let idleRelease: Duration
    private var idleSince: ContinuousClock.Instant?

    init(capacity: Int, idleRelease: Duration = .seconds(1)) {
        self.capacity = max(0, capacity)
        self.idleRelease = idleRelease
        idle.reserveCapacity(self.capacity)
    }

    var count: Int { idle.count }

    mutating func take() -> CurlEasyHandle? {
        idle.popLast() ?? CurlEasyHandle()
    }

    /// Call after `curl_multi_remove_handle`.
    mutating func give(_ handle: CurlEasyHandle) {
        guard idle.count < capacity else { return }  // deinit cleans it up
        handle.reset()
        idle.append(handle)
    }

    /// Called on every pass of the curl thread: `busy` if a transfer runs or waits. Empties the
    /// pool once it has not been busy for `idleRelease`; true if it did.
    mutating func release(busy: Bool, now: @autoclosure () -> ContinuousClock.Instant) -> Bool {
        guard !busy else {
            idleSince = nil
            return false
        }
        guard !idle.isEmpty else { return false }
        let now = now()
        guard let since = idleSince else {
            idleSince = now
            return false
        }
        guard now - since >= idleRelease else { return false }
        drain()
        return true
    }

    mutating func drain() {
        idle.removeAll()
        idleSince = nil
    }
}
