import NIOCore
import Policy

extension ProviderGate {
    /// Slots of one provider and the FIFO of calls waiting for one. Pure: the shell around it
    /// owns the lock, the waiters' callbacks and their timers.
    struct StateMachine {
        enum Admission: Equatable {
            case granted
            case queued
            /// Every slot is taken and the queue is full (or there is none): refuse at once.
            case refused
        }

        private(set) var inFlight = 0
        private(set) var waiting: CircularBuffer<UInt64> = []
        var limits: ProviderLimits

        init(limits: ProviderLimits) {
            self.limits = limits
        }

        mutating func acquire(_ waiter: UInt64) -> Admission {
            guard let max = limits.maxConcurrent else {
                inFlight += 1
                return .granted
            }
            if inFlight < max && waiting.isEmpty {
                inFlight += 1
                return .granted
            }
            guard waiting.count < limits.maxQueue else { return .refused }
            waiting.append(waiter)
            return .queued
        }

        /// A call ended: its slot goes to the longest waiter, if any (returned, already counted
        /// in flight), or is freed. A lower limit after a policy reload frees slots without handing them on.
        mutating func release() -> UInt64? {
            inFlight -= 1
            return grantNext()
        }

        /// A waiter gave up (its wait expired, or its client left): true if it was still waiting.
        mutating func withdraw(_ waiter: UInt64) -> Bool {
            guard let index = waiting.firstIndex(of: waiter) else { return false }
            waiting.remove(at: index)
            return true
        }

        /// New limits from a policy reload; may free room for waiters (returned, granted).
        mutating func update(_ limits: ProviderLimits) -> [UInt64] {
            self.limits = limits
            var granted: [UInt64] = []
            while let next = grantNext() { granted.append(next) }
            return granted
        }

        private mutating func grantNext() -> UInt64? {
            guard !waiting.isEmpty, limits.maxConcurrent.map({ inFlight < $0 }) ?? true else { return nil }
            inFlight += 1
            return waiting.removeFirst()
        }
    }
}
