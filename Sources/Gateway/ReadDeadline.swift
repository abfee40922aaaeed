import NIOCore

/// A connection's one read deadline: `header_timeout_ms` for the next request's head while idle,
/// `body_timeout_ms` for the body once a head arrived. Every request moves it twice, and
/// scheduling and cancelling a NIO timer each time cost 2 % of the CPU, so a deadline later than
/// the armed timer is only written down: the timer, when it fires early, is re-armed for it.
/// Pure bookkeeping; `ProxyHandler` owns the timer itself.
struct ReadDeadline {
    enum Wait: Equatable {
        case request
        case body(timeoutMs: Int)
    }

    enum Firing: Equatable {
        /// Nothing is awaited any more: the timer stops.
        case idle
        /// The deadline moved later since the timer was armed.
        case rearm(at: NIODeadline)
        case expired(Wait)
    }

    private(set) var pending: (wait: Wait, at: NIODeadline)?
    private var timer: Scheduled<Void>?
    private var firesAt = NIODeadline.distantFuture

    /// Awaits `wait` until `deadline`; true when the timer must be armed for it (none is, or the
    /// armed one fires too late).
    mutating func expect(_ wait: Wait, by deadline: NIODeadline) -> Bool {
        pending = (wait, deadline)
        return timer == nil || deadline < firesAt
    }

    /// What was awaited arrived; the armed timer is left to fire and find nothing.
    mutating func satisfied() {
        pending = nil
    }

    mutating func armed(_ timer: Scheduled<Void>, at deadline: NIODeadline) {
        self.timer?.cancel()
        self.timer = timer
        firesAt = deadline
    }

    mutating func fired(now: NIODeadline) -> Firing {
        timer = nil
        firesAt = .distantFuture
        guard let pending else { return .idle }
        if pending.at > now { return .rearm(at: pending.at) }
        self.pending = nil
        return .expired(pending.wait)
    }

    /// The connection is gone: the timer (which holds its handler) is cancelled.
    mutating func cancel() {
        timer?.cancel()
        timer = nil
        firesAt = .distantFuture
        pending = nil
    }
}
