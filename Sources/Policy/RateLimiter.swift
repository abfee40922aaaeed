import Synchronization

/// Requests-per-minute and tokens-per-minute limits per key ("user:NAME", "key:ID"), by GCRA.
///
/// **Semantics.** Each limit is a meter whose burst equals its per-minute amount: an idle key
/// may make `requestsPerMinute` calls at once, then one more every `60 s / requestsPerMinute`.
/// Over any interval of length `w`, at most `limit · (1 + w / 60 s)` is admitted, so a short
/// interval never sees more than one minute's amount (a fixed window allows twice that around
/// its boundary). Tokens work the same, charged the call's estimated tokens at admission and
/// corrected to the actual count at settlement (`correct`). A call estimated above the whole
/// tokens-per-minute amount is admitted when the meter is full and empties it (otherwise it
/// could never run); its settlement then puts the key in debt for the excess.
///
/// A refused call consumes nothing, nor does one a later check refuses (`giveBack`). A limit of 0 refuses every call (retry after one minute,
/// the time a policy reload takes to matter); nil is unlimited. Keys idle for a minute are
/// forgotten (see `RateLimiterStateMachine`). All times are Unix microseconds from the caller.
///
/// Thread-safe: one lock acquisition per call.
public final class RateLimiter: Sendable {
    private let state = Mutex(RateLimiterStateMachine())

    public init() {}

    /// Admits a call of `tokens` estimated tokens for `key` under `limits`, charging one request
    /// and the tokens, or refuses it and charges nothing.
    public func admit(_ key: String, limits: RateLimits, tokens: Int, now: Int64) -> RateDecision {
        state.withLock { $0.admit(key, limits: limits, tokens: tokens, now: now) }
    }

    /// Admits a call against two keys at once (e.g. the user's and the API key's limits), both
    /// or neither. When allowed, the status is, per limit, that of the key with less left; when
    /// refused, that of the refusing key (the one with the longer wait if both refuse).
    public func admit(_ first: String, limits firstLimits: RateLimits,
                      and second: String, limits secondLimits: RateLimits,
                      tokens: Int, now: Int64) -> RateDecision {
        state.withLock {
            $0.admit(first, limits: firstLimits, and: second, limits: secondLimits, tokens: tokens, now: now)
        }
    }

    /// At settlement: replaces the `estimatedTokens` charged at admission with `actualTokens`,
    /// giving back the difference (never fuller than full) or charging the excess (which may put
    /// the key in debt, delaying its next calls). Pass the limits and estimate used at admission.
    public func correct(_ key: String, limits: RateLimits, estimatedTokens: Int, actualTokens: Int,
                        now: Int64) {
        state.withLock {
            $0.correct(key, limits: limits, estimatedTokens: estimatedTokens, actualTokens: actualTokens,
                       now: now)
        }
    }

    /// Gives back what `admit` charged for a call a later check refused (its request and its
    /// `estimatedTokens`), never fuller than full. Pass the limits and estimate used at admission.
    public func giveBack(_ key: String, limits: RateLimits, estimatedTokens: Int, now: Int64) {
        state.withLock { $0.giveBack(key, limits: limits, estimatedTokens: estimatedTokens, now: now) }
    }

    /// What `key` has left at `now`, without charging anything (for headers on other routes).
    public func status(_ key: String, limits: RateLimits, now: Int64) -> RateStatus {
        state.withLock {
            RateLimiterStateMachine.status(of: $0.entries[key] ?? .init(), limits, now: now)
        }
    }

    /// Keys currently holding state (for metrics and tests).
    public var trackedKeys: Int { state.withLock { $0.entries.count } }
}

/// Which per-minute limit refused a call.
public enum RateDimension: String, Sendable, Hashable {
    case requests, tokens
}

public enum RateDecision: Sendable, Hashable {
    /// Admitted; the status is after this call's charge.
    case allowed(RateStatus)
    /// Refused, nothing charged; the same call would be admitted `retryAfterMicros` from now if
    /// nothing else used the key in between.
    case limited(RateStatus, which: RateDimension, retryAfterMicros: Int64)

    public var status: RateStatus {
        switch self {
        case .allowed(let status), .limited(let status, _, _): return status
        }
    }
}

/// What a key has left, per limit; nil where the limit is unset (no header to send).
public struct RateStatus: Sendable, Hashable {
    public var requests: RateMeterStatus?
    public var tokens: RateMeterStatus?

    public init(requests: RateMeterStatus? = nil, tokens: RateMeterStatus? = nil) {
        self.requests = requests
        self.tokens = tokens
    }

    public static let unlimited = RateStatus()
}

/// One limit's numbers for `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.
public struct RateMeterStatus: Sendable, Hashable {
    /// The configured amount per minute (also the burst).
    public var limit: Int
    /// What could be taken right now.
    public var remaining: Int
    /// Microseconds until the meter is full again (`remaining == limit`), rounded up.
    public var resetMicros: Int64

    public init(limit: Int, remaining: Int, resetMicros: Int64) {
        self.limit = limit
        self.remaining = remaining
        self.resetMicros = resetMicros
    }
}
