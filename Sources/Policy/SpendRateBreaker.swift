import Metering
import Synchronization

/// A circuit breaker on the org's spend rate: refuses calls while the spend of the last hour
/// (a sliding window of one-minute buckets, see `SpendRateWindow`) has reached the limit.
///
/// Record each call's actual cost at settlement; ask `isTripped` at admission. The breaker
/// trips at `spend ≥ limit`, and `retryAfterMicros` is when the oldest spend has left the
/// window far enough to be under the limit again. Thread-safe, one lock acquisition per call,
/// fixed memory (60 buckets).
public final class SpendRateBreaker: Sendable {
    private let state = Mutex(SpendRateWindow())

    public init() {}

    public func record(cost: Money, now: Int64) {
        state.withLock { $0.record(cost.picodollars, now: now) }
    }

    /// `(false, 0)` when `limitPerHour` is nil or not reached.
    public func isTripped(limitPerHour: Money?, now: Int64) -> (tripped: Bool, retryAfterMicros: Int64) {
        guard let limitPerHour else { return (false, 0) }
        return state.withLock { $0.check(limit: limitPerHour.picodollars, now: now) }
    }

    /// Spend in the last hour's window (for metrics), saturated at `Money`'s range.
    public func spentLastHour(now: Int64) -> Money {
        Money(picodollars: Int64(clamping: state.withLock { $0.total(now: now) }))
    }
}
