import NIOConcurrencyHelpers
import NIOCore

/// Answers kept for `Idempotency-Key` requests: a repeat of a completed call (same caller key,
/// same idempotency key, within `ttl`) gets the first answer again, without a second upstream
/// call or charge; a repeat while the first is in flight waits for it.
///
/// Kept in memory, per process: bounded by `maxEntries` and `maxBytes` (oldest answers go
/// first), and each key holder (all their keys together) to an eighth of either (their own
/// oldest go first: one caller's flood of large answers cannot evict everyone's and have their
/// retries charged twice);
/// answers over `maxAnswerBytes` are not kept (a repeat then gets 409), and only 2xx
/// answers are kept: a call that failed or was refused releases its key, so the client's retry
/// runs anew.
final class IdempotencyStore: Sendable {
    struct Key: Hashable, Sendable {
        let apiKeyID: String
        let token: String
        /// The key holder, whose keys share one share of the store (more keys buy no more room).
        var owner: String

        init(apiKeyID: String, token: String, owner: String? = nil) {
            self.apiKeyID = apiKeyID
            self.token = token
            self.owner = owner ?? apiKeyID
        }
    }

    struct Answer: Sendable {
        let status: Int
        let headers: [(String, String)]
        let body: ByteBuffer
        let callID: String
    }

    /// What a request with an idempotency key does.
    enum Claim: Sendable {
        /// First of its key: run the call, then `complete` or `release`.
        case proceed
        /// Completed before: answer this.
        case replay(Answer)
        /// The first is still running: `resume` runs on the caller's loop when it ends.
        case wait
        /// The key was used with another request body, or its answer was too large to keep.
        case conflict(String)
    }

    private enum Slot {
        case running(fingerprint: Int64, waiters: [Waiter])
        case done(fingerprint: Int64, answer: Answer?, bytes: Int, at: Int64)
    }

    struct Waiter: Sendable {
        let loop: any EventLoop
        let resume: @Sendable (Claim) -> Void
    }

    private struct State {
        var slots: [Key: Slot] = [:]
        /// Completed keys, oldest first (for eviction).
        var order: [(key: Key, at: Int64)] = []
        var orderStart = 0
        var bytes = 0
        /// Kept answers and their bytes per key holder.
        var held: [String: (entries: Int, bytes: Int)] = [:]

        /// Forgets the kept answer of `key` (done at `at`), if it is still that one.
        mutating func drop(_ key: Key, doneAt at: Int64) {
            guard case .done(_, _, let size, let doneAt) = slots[key], doneAt == at else { return }
            slots[key] = nil
            bytes -= size
            let left = held[key.owner].map { (entries: $0.entries - 1, bytes: $0.bytes - size) }
            held[key.owner] = left.flatMap { $0.entries > 0 ? $0 : nil }
        }
    }

    let ttlMicros: Int64
    let maxEntries: Int
    let maxBytes: Int
    let maxAnswerBytes: Int
    /// One key holder's share of either bound.
    var maxEntriesPerCaller: Int { max(1, maxEntries / 8) }
    var maxBytesPerCaller: Int { max(maxAnswerBytes, maxBytes / 8) }
    private let state = NIOLockedValueBox(State())

    init(ttlMicros: Int64 = 24 * 3_600 * 1_000_000, maxEntries: Int = 10_000, maxBytes: Int = 64 << 20,
         maxAnswerBytes: Int = 1 << 20) {
        self.ttlMicros = ttlMicros
        self.maxEntries = maxEntries
        self.maxBytes = maxBytes
        self.maxAnswerBytes = maxAnswerBytes
    }

    func claim(_ key: Key, fingerprint: Int64, now: Int64, waiter: Waiter) -> Claim {
        state.withLockedValue { state in
            evict(&state, now: now)
            switch state.slots[key] {
            case nil:
                state.slots[key] = .running(fingerprint: fingerprint, waiters: [])
                return .proceed
            case .running(let first, var waiters):
                guard first == fingerprint else { return .conflict(Self.differentBody) }
                waiters.append(waiter)
                state.slots[key] = .running(fingerprint: first, waiters: waiters)
                return .wait
            case .done(let first, let answer, _, _):
                guard first == fingerprint else { return .conflict(Self.differentBody) }
                guard let answer else {
                    return .conflict("The answer to the first request with this Idempotency-Key was over \(maxAnswerBytes) bytes and was not kept; use a new key to call again.")
                }
                return .replay(answer)
            }
        }
    }

    /// The first call of `key` ended with a 2xx answer, delivered whole: keep it for repeats.
    func complete(_ key: Key, _ answer: Answer, bytes: Int, now: Int64) {
        let kept = bytes <= maxAnswerBytes ? answer : nil
        let waiters = state.withLockedValue { state -> [Waiter] in
            guard case .running(let fingerprint, let waiters) = state.slots[key] else { return [] }
            let size = kept == nil ? 0 : bytes
            state.slots[key] = .done(fingerprint: fingerprint, answer: kept, bytes: size, at: now)
            state.order.append((key, now))
            state.bytes += size
            var held = state.held[key.owner] ?? (0, 0)
            held.entries += 1
            held.bytes += size
            state.held[key.owner] = held
            evictOverShare(key.owner, &state)
            evict(&state, now: now)
            return waiters
        }
        let claim: Claim = kept.map { .replay($0) } ?? .conflict(
            "The answer to the first request with this Idempotency-Key was over \(maxAnswerBytes) bytes and was not kept; use a new key to call again.")
        for waiter in waiters { waiter.loop.execute { waiter.resume(claim) } }
    }

    /// The first call of `key` failed or was refused: forget the key; waiters try again
    /// (the first of them to claim it runs the call).
    func release(_ key: Key) {
        let waiters = state.withLockedValue { state -> [Waiter] in
            guard case .running(_, let waiters) = state.slots[key] else { return [] }
            state.slots[key] = nil
            return waiters
        }
        for waiter in waiters { waiter.loop.execute { waiter.resume(.proceed) } }
    }

    var count: Int { state.withLockedValue { $0.slots.count } }

    /// Drops expired answers, then the oldest while over the bounds.
    private func evict(_ state: inout State, now: Int64) {
        while state.orderStart < state.order.count {
            let (key, at) = state.order[state.orderStart]
            let over = state.slots.count > maxEntries || state.bytes > maxBytes
            guard now - at >= ttlMicros || over else { break }
            state.orderStart += 1
            state.drop(key, doneAt: at)
        }
        if state.orderStart > 1_024, state.orderStart * 2 > state.order.count {
            state.order.removeFirst(state.orderStart)
            state.orderStart = 0
        }
    }

    /// Drops `owner`'s oldest answers while they hold more than their share: a walk of the
    /// order that only a holder over their share pays for.
    private func evictOverShare(_ owner: String, _ state: inout State) {
        var at = state.orderStart
        while let held = state.held[owner], held.entries > maxEntriesPerCaller || held.bytes > maxBytesPerCaller,
              at < state.order.count {
            let (key, doneAt) = state.order[at]
            if key.owner == owner { state.drop(key, doneAt: doneAt) }
            at += 1
        }
    }

    static let differentBody = "This Idempotency-Key was already used with a different request body (or x-tokenctl-user, anthropic-version, anthropic-beta, openai-beta or accept header); use a new key for a new request."
}
