/// How many calls a provider gets at once, and how callers wait beyond that (providers.yaml:
/// `max_concurrent`, `max_queue`, `queue_timeout_ms`). A slow or failing provider then costs a
/// bounded number of connections and a bounded wait, instead of piling up every caller.
public struct ProviderLimits: Sendable, Equatable {
    /// Calls in flight to the provider at once; nil: no limit (and no queue).
    public var maxConcurrent: Int?
    /// Calls that may wait for a slot, first come first served; past it, 503 at once.
    public var maxQueue: Int
    /// Longest wait for a slot before 503.
    public var queueTimeoutMs: Int

    public static let unlimited = ProviderLimits(maxConcurrent: nil, maxQueue: 0, queueTimeoutMs: 0)
    public static let defaultQueueTimeoutMs = 5_000

    /// By default the queue is as long as the limit: a burst of twice the limit is absorbed.
    public init(maxConcurrent: Int?, maxQueue: Int? = nil, queueTimeoutMs: Int = ProviderLimits.defaultQueueTimeoutMs) {
        self.maxConcurrent = maxConcurrent
        self.maxQueue = maxConcurrent == nil ? 0 : (maxQueue ?? maxConcurrent!)
        self.queueTimeoutMs = queueTimeoutMs
    }
}
