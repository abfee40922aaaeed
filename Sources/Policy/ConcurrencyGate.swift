import Synchronization

/// Counts calls in flight per key ("user:NAME", "key:ID") and refuses one past the key's limit.
///
/// Every acquired call is counted, limited or not, so that `release` always balances
/// `tryAcquire` even if a policy reload sets or lifts the limit while the call runs. A key
/// with nothing in flight has no entry. Thread-safe: one lock acquisition per call.
public final class ConcurrencyGate: Sendable {
    private let state = Mutex(ConcurrencyGateState())

    public init() {}

    /// Counts one more call for `key` if fewer than `limit` are in flight (nil: no limit; 0:
    /// none allowed). Returns whether the call may go; a refused call is not counted.
    public func tryAcquire(_ key: String, limit: Int?) -> Bool {
        state.withLock { $0.tryAcquire(key, limit: limit) }
    }

    /// Ends one call counted by `tryAcquire`. Releasing a key with nothing in flight is a no-op.
    public func release(_ key: String) {
        state.withLock { $0.release(key) }
    }

    /// Calls in flight for `key`.
    public func inFlight(_ key: String) -> Int {
        state.withLock { $0.counts[key] ?? 0 }
    }

    /// Calls in flight over all keys (for metrics).
    public var totalInFlight: Int { state.withLock { $0.total } }
}

/// The gate's counts: pure.
struct ConcurrencyGateState: Sendable {
    private(set) var counts: [String: Int] = [:]
    private(set) var total = 0

    mutating func tryAcquire(_ key: String, limit: Int?) -> Bool {
        let current = counts[key] ?? 0
        if let limit, current >= limit { return false }
        counts[key] = current + 1
        total += 1
        return true
    }

    mutating func release(_ key: String) {
        guard let current = counts[key] else { return }
        if current <= 1 {
            counts.removeValue(forKey: key)
        } else {
            counts[key] = current - 1
        }
        total -= 1
    }
}
