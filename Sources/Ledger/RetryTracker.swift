/// Decides, as rows are written, which calls are retries, and keeps that equal to the definition
/// whatever order rows arrive in.
///
/// Definition: a call is a retry if it has a user and a request hash, and another call with the
/// same user and hash precedes it, in (started_at, id) order, by at most
/// `ReportQuery.retryWindowMicros` (120 s, inclusive). Adding calls can only turn calls into
/// retries, never back, so the flag can be kept incrementally: a late row may flag later calls.
///
/// Memory holds every fingerprinted call that started at or after `horizon` (the latest start
/// seen minus the window and `lateness`); a row whose windows reach before the horizon asks the
/// ledger instead (index on user, started_at), so any lateness stays correct, only slower.
/// Used on one thread, inside the writer's transaction; after a rollback call `reload`.
final class RetryTracker {
    struct Call {
        var startedAt: Int64
        /// Its id, for order only.
        var order: CallOrderKey
        var rowid: Int64
        var retry: Bool
        var keys: RollupKeyIds
        var cost: Int64

        func precedes(_ other: Call) -> Bool {
            Self.order(startedAt, order, precedes: other.startedAt, other.order)
        }

        /// (started_at, id) order.
        static func order(_ startedAt: Int64, _ id: CallOrderKey, precedes otherStartedAt: Int64,
                          _ otherId: CallOrderKey) -> Bool {
            startedAt != otherStartedAt ? startedAt < otherStartedAt : id < otherId
        }
    }

    private struct Fingerprint: Hashable {
        var user: String
        var hash: Int64
    }

    static let window = ReportQuery.retryWindowMicros
    /// How late (after later-starting calls) a row may arrive and still be decided in memory.
    /// Memory holds (window + lateness) × the call rate, so this stays short: at 5,000 calls/s,
    /// 15 minutes kept ~5M calls (hundreds of MB). Calls longer than this (long streams) are
    /// decided by one indexed query instead.
    static let lateness: Int64 = 30 * 1_000_000

    private var recent: [Fingerprint: [Call]] = [:]
    private(set) var horizon = Int64.min / 4
    private var latest = Int64.min / 4
    private var prunedAt = Int64.min / 4
    private let connection: SQLiteConnection
    private let store: RollupStore
    private let around: Statement

    init(connection: SQLiteConnection, store: RollupStore) throws {
        self.connection = connection
        self.store = store
        around = try connection.prepare("""
            SELECT started_at, id, rowid, retry, team, COALESCE(model_served, model_requested), provider,
                   plan, key_id, cost_pd
            FROM calls WHERE user = ?1 AND started_at >= ?2 AND started_at <= ?3 AND request_hash = ?4
            """)
        try reload()
    }

    func finalize() { around.finalize() }

    /// Reloads the recent calls from the ledger (at open, after a rollback, or after another
    /// connection wrote).
    func reload() throws {
        recent.removeAll()
        guard let last = try connection.scalarInt("SELECT MAX(started_at) FROM calls") else {
            horizon = Int64.min / 4
            latest = horizon
            return
        }
        latest = last
        horizon = last - Self.window - Self.lateness
        prunedAt = latest
        let s = try connection.prepare("""
            SELECT user, request_hash, started_at, id, rowid, retry, team, COALESCE(model_served, model_requested),
                   provider, plan, key_id, cost_pd
            FROM calls WHERE started_at >= ?1 AND user IS NOT NULL AND request_hash IS NOT NULL
            ORDER BY started_at, id
            """)
        s.bind(horizon, at: 1)
        while try s.step() {
            let fingerprint = Fingerprint(user: s.string(at: 0), hash: s.int64(at: 1))
            let call = try call(s, user: fingerprint.user, from: 2)
            recent[fingerprint, default: []].append(call)
        }
    }

    /// Whether `entry`, not yet recorded, is a retry: `record`'s test of its predecessor, without
    /// recording it. nil when memory cannot decide (a row too late for it, which `record` asks the
    /// ledger about). Lets the writer insert a retry with its flag instead of updating it after.
    func isRetry(_ entry: LedgerEntry) -> Bool? {
        guard let user = entry.user, let hash = entry.requestHash else { return false }
        guard entry.startedAt - Self.window >= horizon else { return nil }
        guard let calls = recent[Fingerprint(user: user, hash: hash)] else { return false }
        return Self.follows(calls, at: calls.sortedIndex(entry.startedAt, CallOrderKey(entry.id)), startedAt: entry.startedAt)
    }

    /// The test of a retry: a call starting at `startedAt`, at `index` of its fingerprint's calls,
    /// has a predecessor there at most a window before it. `isRetry` and `record` share it: the
    /// writer inserts with one's answer and corrects by the other's.
    private static func follows(_ calls: [Call], at index: Int, startedAt: Int64) -> Bool {
        index > 0 && startedAt - calls[index - 1].startedAt <= window
    }

    /// Records a row just inserted (at `rowid`, under rollup keys `keys`). Returns whether it is a
    /// retry and the earlier-recorded calls that became retries because of it.
    ///
    /// The calls of one fingerprint are kept sorted by (started_at, id), so a row that arrives in
    /// order costs a binary search and an append, however many times a client sent the same body
    /// (a retry loop, a benchmark): only its predecessor decides whether it is a retry, and only
    /// calls after it (rows that arrived before it, out of order) can become retries.
    func record(_ entry: LedgerEntry, rowid: Int64, keys: RollupKeyIds) throws -> (retry: Bool, flagged: [Call]) {
        guard let user = entry.user, let hash = entry.requestHash else { return (false, []) }
        let fingerprint = Fingerprint(user: user, hash: hash)
        let new = Call(startedAt: entry.startedAt, order: CallOrderKey(entry.id), rowid: rowid, retry: false, keys: keys,
                       cost: entry.cost.picodollars)
        latest = max(latest, entry.startedAt)
        guard entry.startedAt - Self.window >= horizon else {
            // Too late to decide from memory: ask the ledger (rare, slower, same answer).
            return try recordFromLedger(new, fingerprint: fingerprint)
        }
        var isRetry = false
        var flagged: [Call] = []
        recent[fingerprint, default: []].withSortedInsert(new) { calls, index in
            if Self.follows(calls, at: index, startedAt: new.startedAt) {
                isRetry = true
                calls[index].retry = true
            }
            var j = index + 1
            while j < calls.count, calls[j].startedAt - new.startedAt <= Self.window {
                if !calls[j].retry {
                    calls[j].retry = true
                    flagged.append(calls[j])
                }
                j += 1
            }
        }
        return (isRetry, flagged)
    }

    private func recordFromLedger(_ new: Call, fingerprint: Fingerprint) throws -> (retry: Bool, flagged: [Call]) {
        var isRetry = false
        var flagged: [Call] = []
        for var other in try fromLedger(fingerprint, around: new) where other.rowid != new.rowid {
            if other.precedes(new) {
                if new.startedAt - other.startedAt <= Self.window { isRetry = true }
            } else if other.startedAt - new.startedAt <= Self.window && !other.retry {
                other.retry = true
                flagged.append(other)
            }
        }
        if !flagged.isEmpty, var calls = recent[fingerprint] {
            let rowids = Set(flagged.map(\.rowid))
            for i in calls.indices where rowids.contains(calls[i].rowid) { calls[i].retry = true }
            recent[fingerprint] = calls
        }
        // Decided from the ledger, but recent enough to matter to the calls that follow it.
        if new.startedAt >= horizon {
            var call = new
            call.retry = isRetry
            recent[fingerprint, default: []].withSortedInsert(call) { _, _ in }
        }
        return (isRetry, flagged)
    }

    /// Drops calls that fell behind the horizon (after a commit; at most once a minute of ledger
    /// time), in place, and from a fingerprint only once they are half its calls: calls behind the
    /// horizon decide nothing (every call decided in memory starts a window after it), so they
    /// may wait. Filtering every fingerprint into new arrays each minute held the committing event
    /// loop for 200 ms when the rig's one fingerprint had a million calls.
    func prune() {
        guard latest - prunedAt >= 60_000_000 else { return }
        prunedAt = latest
        horizon = max(horizon, latest - Self.window - Self.lateness)
        var emptied: [Fingerprint] = []
        for i in recent.indices {
            let count = recent.values[i].count
            let behind = recent.values[i].sortedIndex(horizon, .lowest)
            if behind == count {
                emptied.append(recent.keys[i])
            } else if behind >= count / 2 {
                recent.values[i].removeFirst(behind)
            }
        }
        for fingerprint in emptied { recent[fingerprint] = nil }
    }

    private func fromLedger(_ fingerprint: Fingerprint, around new: Call) throws -> [Call] {
        around.bind(fingerprint.user, at: 1)
        around.bind(new.startedAt - Self.window, at: 2)
        around.bind(new.startedAt + Self.window, at: 3)
        around.bind(fingerprint.hash, at: 4)
        defer { around.reset() }
        var calls: [Call] = []
        while try around.step() { calls.append(try call(around, user: fingerprint.user, from: 0)) }
        return calls
    }

    /// A call from columns started_at, id, rowid, retry, team, model, provider, plan, key_id, cost_pd.
    private func call(_ s: Statement, user: String, from c: Int32) throws -> Call {
        let key = RollupKey(user: user, team: s.optionalString(at: c + 4), model: s.optionalString(at: c + 5),
                            provider: s.optionalString(at: c + 6), plan: s.optionalString(at: c + 7),
                            keyId: s.optionalString(at: c + 8))
        return Call(startedAt: s.int64(at: c), order: CallOrderKey(s.string(at: c + 1)), rowid: s.int64(at: c + 2),
                    retry: s.bool(at: c + 3), keys: try store.ids(of: key), cost: s.int64(at: c + 9))
    }
}

private extension Array where Element == RetryTracker.Call {
    /// Inserts `call` in (started_at, id) order (at the end when calls arrive in order) and hands
    /// `body` the array and the call's index, to look at its neighbours in place.
    mutating func withSortedInsert(_ call: Element, _ body: (inout [Element], Int) -> Void) {
        let index = sortedIndex(call.startedAt, call.order)
        insert(call, at: index)
        body(&self, index)
    }

    /// Where a call starting at `startedAt` with `id` goes in (started_at, id) order.
    func sortedIndex(_ startedAt: Int64, _ id: CallOrderKey) -> Int {
        guard let last, Element.order(startedAt, id, precedes: last.startedAt, last.order) else { return count }
        var low = 0, high = count
        while low < high {
            let mid = (low + high) / 2
            if Element.order(self[mid].startedAt, self[mid].order, precedes: startedAt, id) { low = mid + 1 } else { high = mid }
        }
        return low
    }
}
