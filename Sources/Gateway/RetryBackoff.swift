import Policy

/// When an upstream attempt may be repeated, and after how long.
///
/// Only failures that say nothing reached the provider's model or that it shed load are retried:
/// connect errors (DNS, TCP, TLS handshake, but not an untrusted certificate) and statuses 502,
/// 503 and 529 (Anthropic's "overloaded"); and only while nothing has been sent to the client,
/// so a retry is invisible to it except in latency. Waits use full jitter (uniform in [0, min(cap, base·2^attempt)]) so that callers
/// retrying together spread out instead of hitting a recovering provider at once.
enum RetryBackoff {
    static let retryableStatuses: Set<Int> = [502, 503, 529]
    static let baseMillis = 100
    static let capMillis = Provider.retryBackoffCapMs

    /// The wait before retry number `attempt` (1 for the first retry), in milliseconds.
    static func delayMillis(attempt: Int, random: (ClosedRange<Int>) -> Int = { Int.random(in: $0) }) -> Int {
        let ceiling = min(capMillis, baseMillis << min(max(attempt - 1, 0), 10))
        return random(0...ceiling)
    }
}
