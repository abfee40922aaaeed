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
        let owner: String

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

    /// Completed keys, oldest first; `start` is the first not yet passed.
    private struct CompletionQueue {
        var items: [(key: Key, at: Int64)] = []
        var start = 0

        var first: (key: Key, at: Int64)? { start < items.count ? items[start] : nil }
        var count: Int { items.count - start }

        mutating func removeFirst() {
            start += 1
            if start > 1_024, start * 2 > items.count {
                items.removeFirst(start)
                start = 0
            }
        }
    }

    /// One key holder's kept answers, oldest first (their own go first when over their share).
    private struct Holder {
        var queue = CompletionQueue()
        var entries = 0
        var bytes = 0
    }

    private struct State {
        var slots: [Key: Slot] = [:]
        /// Every kept answer, oldest first (expiry and the store's bounds).
        var order = CompletionQueue()
        /// Entries of `order` whose answer went out of turn (a holder over its share).
        var dead = 0
        var bytes = 0
        var holders: [String: Holder] = [:]

        func isKept(_ key: Key, doneAt at: Int64) -> Bool {
            if case .done(_, _, _, let doneAt) = slots[key] { return doneAt == at }
            return false
        }

        mutating func keep(_ key: Key, size: Int, at: Int64) {
            order.items.append((key, at))
            bytes += size
            var holder = holders[key.owner] ?? Holder()
            holder.queue.items.append((key, at))
            holder.entries += 1
            holder.bytes += size
            holders[key.owner] = holder
        }

        /// Forgets the kept answer of `key` (done at `at`), if it is still that one. It is its
        /// holder's oldest (both queues are in completion order): their queue moves past it.
        mutating func drop(_ key: Key, doneAt at: Int64) {
            guard case .done(_, _, let size, let doneAt) = slots[key], doneAt == at else { return }
            slots[key] = nil
            bytes -= size
            guard var holder = holders[key.owner] else { return }
            holder.entries -= 1
            holder.bytes -= size
            if let first = holder.queue.first, first.key == key, first.at == at { holder.queue.removeFirst() }
            holders[key.owner] = holder.entries > 0 ? holder : nil
        }
    }

    let ttlMicros: Int64
    let maxEntries: Int
    let maxBytes: Int
    let maxAnswerBytes: Int
    /// One key holder's share of either bound.
    var maxEntriesPerHolder: Int { max(1, maxEntries / 8) }
    var maxBytesPerHolder: Int { max(maxAnswerBytes, maxBytes / 8) }
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
            state.keep(key, size: size, at: now)
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

    /// The order's live length and the holders tracked (tests check they stay bounded).
    var bookkeeping: (orderLength: Int, holders: Int) { state.withLockedValue { ($0.order.count, $0.holders.count) } }

    /// Drops expired answers, then the oldest while over the bounds; passes entries whose
    /// answer went out of turn, and compacts the order once they are half of it.
    private func evict(_ state: inout State, now: Int64) {
        while let (key, at) = state.order.first {
            if !state.isKept(key, doneAt: at) {
                state.order.removeFirst()
                state.dead -= 1
                continue
            }
            let over = state.slots.count > maxEntries || state.bytes > maxBytes
            guard now - at >= ttlMicros || over else { break }
            state.order.removeFirst()
            state.drop(key, doneAt: at)
        }
        if state.dead > 1_024, state.dead * 2 > state.order.count {
            let current = state
            state.order.items = current.order.items[current.order.start...].filter { current.isKept($0.key, doneAt: $0.at) }
            state.order.start = 0
            state.dead = 0
        }
    }

    /// Drops `owner`'s oldest answers while they hold more than their share, from their own
    /// queue (the store's order keeps a dead entry, passed later).
    private func evictOverShare(_ owner: String, _ state: inout State) {
        while let holder = state.holders[owner], holder.entries > maxEntriesPerHolder || holder.bytes > maxBytesPerHolder,
              let (key, at) = holder.queue.first {
            if state.isKept(key, doneAt: at) {
                state.drop(key, doneAt: at)  // moves their queue on
                state.dead += 1
            } else {
                state.holders[owner]?.queue.removeFirst()  // not expected: their oldest is always kept
            }
        }
    }

    static let differentBody = "This Idempotency-Key was already used with a different request body (or x-tokenctl-user, anthropic-version, anthropic-beta, openai-beta or accept header); use a new key for a new request."
}
