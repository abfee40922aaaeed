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
struct CurlEasyHandlePool {
    private var idle: [CurlEasyHandle] = []
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(0, capacity)
        idle.reserveCapacity(self.capacity)
    }

    mutating func take() -> CurlEasyHandle? {
        idle.popLast() ?? CurlEasyHandle()
    }

    /// Call after `curl_multi_remove_handle`.
    mutating func give(_ handle: CurlEasyHandle) {
        guard idle.count < capacity else { return }  // deinit cleans it up
        handle.reset()
        idle.append(handle)
    }

    mutating func drain() { idle.removeAll() }
}
