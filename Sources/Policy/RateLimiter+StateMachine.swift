/// The rate limiter's table of meters, one pair (requests, tokens) per key: pure, time passed in.
///
/// A key's entry exists only while one of its meters is in use; a full meter is the same as no
/// entry. Entries that have become full are dropped by a sweep at most once a minute, so memory
/// is bounded by the keys active in the last minute (plus any settlement debt).
struct RateLimiterStateMachine: Sendable {
    struct Entry: Sendable, Hashable {
        var requests = GCRACell.full
        var tokens = GCRACell.full

        func isIdle(at now: Int64) -> Bool {
            !requests.isBusy(at: now) && !tokens.isBusy(at: now)
        }

        /// Its busy meters at the rates `limits` set now: a policy reload may have changed them
        /// (`GCRACell.rescaled`). Stored by a refusal too, so that a lowered limit's count of what
        /// was taken is made once, not again from each later moment.
        func rescaled(to limits: RateLimits, at now: Int64) -> Entry {
            var entry = self
            if let rate = limits.requestsPerMinute.flatMap(GCRACell.usableRate), requests.isBusy(at: now) {
                entry.requests = requests.rescaled(to: rate, at: now)
            }
            if let rate = limits.tokensPerMinute.flatMap(GCRACell.usableRate), tokens.isBusy(at: now) {
                entry.tokens = tokens.rescaled(to: rate, at: now)
            }
            return entry
        }
    }

    /// One key's verdict before anything is stored.
    enum Evaluation {
        case fits(Entry, RateStatus)
        case over(RateStatus, RateDimension, retryAfterMicros: Int64)

        var retryAfter: Int64 {
            if case .over(_, _, let wait) = self { return wait }
            return 0
        }
    }

    /// One meter's verdict: the pushed cell, or how long until the call would fit.
    enum Metered {
        case fits(GCRACell)
        case over(wait: Int64)
    }

    private(set) var entries: [String: Entry] = [:]
    private var nextSweep: Int64 = .min

    // MARK: Admission

    mutating func admit(_ key: String, limits: RateLimits, tokens: Int, now: Int64) -> RateDecision {
        sweepIfDue(now)
        guard limits.requestsPerMinute != nil || limits.tokensPerMinute != nil else {
            return .allowed(.unlimited)
        }
        switch Self.evaluate(entries[key] ?? Entry(), limits, tokens: tokens, now: now) {
        case .fits(let updated, let status):
            entries[key] = updated
            return .allowed(status)
        case .over(let status, let which, let wait):
            storeRescaled(key, limits, now: now)
            return .limited(status, which: which, retryAfterMicros: wait)
        }
    }

    /// Both keys or neither: a call refused by either consumes nothing from the other.
    mutating func admit(_ first: String, limits firstLimits: RateLimits,
                        and second: String, limits secondLimits: RateLimits,
                        tokens: Int, now: Int64) -> RateDecision {
        sweepIfDue(now)
        let a = Self.evaluate(entries[first] ?? Entry(), firstLimits, tokens: tokens, now: now)
        let b = Self.evaluate(entries[second] ?? Entry(), secondLimits, tokens: tokens, now: now)
        switch (a, b) {
        case (.fits(let entryA, let statusA), .fits(let entryB, let statusB)):
            if firstLimits.requestsPerMinute != nil || firstLimits.tokensPerMinute != nil { entries[first] = entryA }
            if secondLimits.requestsPerMinute != nil || secondLimits.tokensPerMinute != nil { entries[second] = entryB }
            return .allowed(statusA.tighter(statusB))
        default:
            storeRescaled(first, firstLimits, now: now)
            storeRescaled(second, secondLimits, now: now)
            let refusal = a.retryAfter >= b.retryAfter ? a : b
            guard case .over(let status, let which, let wait) = refusal else { preconditionFailure() }
            return .limited(status, which: which, retryAfterMicros: wait)
        }
    }

    /// A refused key's meters, uncharged, at the current rates (see `Entry.rescaled`).
    private mutating func storeRescaled(_ key: String, _ limits: RateLimits, now: Int64) {
        guard let entry = entries[key] else { return }
        let rescaled = entry.rescaled(to: limits, at: now)
        if rescaled != entry { entries[key] = rescaled }
    }

    /// Charges one request and `tokens` to `entry`, or says which limit refuses and for how long
    /// (the longer wait if both do, so a retry at that moment fits both).
    static func evaluate(_ stored: Entry, _ limits: RateLimits, tokens: Int, now: Int64) -> Evaluation {
        let entry = stored.rescaled(to: limits, at: now)
        var updated = entry
        var refusal: (which: RateDimension, wait: Int64)?
        if let limit = limits.requestsPerMinute {
            switch meter(entry.requests, limit: limit, units: 1, now: now) {
            case .fits(let cell): updated.requests = cell
            case .over(let wait): refusal = (.requests, wait)
            }
        }
        if let limit = limits.tokensPerMinute {
            switch meter(entry.tokens, limit: limit, units: tokens, now: now) {
            case .fits(let cell): updated.tokens = cell
            case .over(let wait): if wait > (refusal?.wait ?? -1) { refusal = (.tokens, wait) }
            }
        }
        if let refusal {
            return .over(status(of: entry, limits, now: now), refusal.which, retryAfterMicros: refusal.wait)
        }
        return .fits(updated, status(of: updated, limits, now: now))
    }

    static func meter(_ cell: GCRACell, limit: Int, units: Int, now: Int64) -> Metered {
        guard let rate = GCRACell.usableRate(limit) else { return .over(wait: GCRACell.period) }
        let pushed = cell.rescaled(to: rate, at: now).advanced(by: GCRACell.charge(units, rate: rate))
        return pushed.fits(at: now) ? .fits(pushed) : .over(wait: pushed.wait(from: now))
    }

    static func status(of entry: Entry, _ limits: RateLimits, now: Int64) -> RateStatus {
        RateStatus(requests: limits.requestsPerMinute.map { status(of: entry.requests, limit: $0, now: now) },
                   tokens: limits.tokensPerMinute.map { status(of: entry.tokens, limit: $0, now: now) })
    }

    static func status(of cell: GCRACell, limit: Int, now: Int64) -> RateMeterStatus {
        guard let rate = GCRACell.usableRate(limit) else {
            return RateMeterStatus(limit: max(0, limit), remaining: 0, resetMicros: 0)
        }
        let current = cell.rescaled(to: rate, at: now)
        return RateMeterStatus(limit: limit, remaining: Int(current.remaining(at: now)),
                               resetMicros: current.untilFull(at: now))
    }

    // MARK: Settlement

    /// Replaces the estimate charged at admission with the actual token count.
    mutating func correct(_ key: String, limits: RateLimits, estimatedTokens: Int, actualTokens: Int,
                          now: Int64) {
        sweepIfDue(now)
        guard let limit = limits.tokensPerMinute, let rate = GCRACell.usableRate(limit) else { return }
        let charged = GCRACell.charge(estimatedTokens, rate: rate)
        let actual = Int64(max(0, actualTokens))
        // Read, change, write back whole: `entries[key]?.tokens = …` goes through the optional
        // subscript's modify coroutine, which allocates its frame on every call.
        if actual > charged {
            var entry = entries[key] ?? Entry()
            entry.tokens = entry.tokens.charged(extra: actual - charged, idleRate: rate, now: now)
            entries[key] = entry
        } else if actual < charged, var entry = entries[key] {
            entry.tokens = entry.tokens.refunded(charged - actual, now: now)
            entries[key] = entry
        }
    }

    /// Gives back a call admitted here that a later check refused (the spend-rate breaker, a
    /// budget): its request and its estimated tokens, as if it never came.
    mutating func giveBack(_ key: String, limits: RateLimits, estimatedTokens: Int, now: Int64) {
        sweepIfDue(now)
        guard var entry = entries[key] else { return }
        if let limit = limits.requestsPerMinute, let rate = GCRACell.usableRate(limit) {
            entry.requests = entry.requests.refunded(GCRACell.charge(1, rate: rate), now: now)
        }
        if let limit = limits.tokensPerMinute, let rate = GCRACell.usableRate(limit) {
            entry.tokens = entry.tokens.refunded(GCRACell.charge(estimatedTokens, rate: rate), now: now)
        }
        entries[key] = entry
    }

    // MARK: Pruning

    /// Drops the entries whose meters are both full, at most once per minute.
    mutating func sweepIfDue(_ now: Int64) {
        guard now >= nextSweep else { return }
        nextSweep = now + GCRACell.period
        guard !entries.isEmpty else { return }
        let idle = entries.compactMap { $0.value.isIdle(at: now) ? $0.key : nil }
        for key in idle { entries.removeValue(forKey: key) }
    }
}

extension RateStatus {
    /// Per limit, the status of whichever key has less left (the one a client will hit first).
    func tighter(_ other: RateStatus) -> RateStatus {
        RateStatus(requests: RateMeterStatus.tighter(requests, other.requests),
                   tokens: RateMeterStatus.tighter(tokens, other.tokens))
    }
}

extension RateMeterStatus {
    static func tighter(_ a: RateMeterStatus?, _ b: RateMeterStatus?) -> RateMeterStatus? {
        guard let a else { return b }
        guard let b else { return a }
        if a.remaining != b.remaining { return a.remaining < b.remaining ? a : b }
        return a.resetMicros >= b.resetMicros ? a : b
    }
}
