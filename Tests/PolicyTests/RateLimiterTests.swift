import Testing
@testable import Policy

@Suite struct RateLimiterTests {
    static let t0: Int64 = 1_780_000_000_000_000
    static let second: Int64 = 1_000_000

    @Test func aFreshKeyHasItsWholeMinuteAsBurstThenOneUnitPerInterval() {
        let limiter = RateLimiter()
        let limits = RateLimits(requestsPerMinute: 60)
        for i in 0..<60 {
            guard case .allowed(let status) = limiter.admit("user:bob", limits: limits, tokens: 0, now: Self.t0) else {
                Issue.record("call \(i) refused"); return
            }
            #expect(status.requests == RateMeterStatus(limit: 60, remaining: 59 - i, resetMicros: Int64(i + 1) * Self.second))
            #expect(status.tokens == nil)
        }
        #expect(limiter.admit("user:bob", limits: limits, tokens: 0, now: Self.t0)
                == .limited(RateStatus(requests: .init(limit: 60, remaining: 0, resetMicros: 60 * Self.second)),
                            which: .requests, retryAfterMicros: Self.second))
        // Exact: one microsecond early is still refused, on time is admitted.
        #expect(limiter.admit("user:bob", limits: limits, tokens: 0, now: Self.t0 + Self.second - 1)
                == .limited(RateStatus(requests: .init(limit: 60, remaining: 0, resetMicros: 59 * Self.second + 1)),
                            which: .requests, retryAfterMicros: 1))
        #expect(limiter.admit("user:bob", limits: limits, tokens: 0, now: Self.t0 + Self.second).isAllowed)
        // Another key is independent.
        #expect(limiter.admit("user:amy", limits: limits, tokens: 0, now: Self.t0).isAllowed)
    }

    @Test func retryAfterIsExactForRatesThatDoNotDivideAMinute() {
        let limiter = RateLimiter()
        let limits = RateLimits(requestsPerMinute: 7)
        for _ in 0..<7 { #expect(limiter.admit("k", limits: limits, tokens: 0, now: Self.t0).isAllowed) }
        // 60 s / 7 = 8,571,428.57 µs: the 8th call fits 8,571,429 µs later, not a µs sooner.
        guard case .limited(_, .requests, let wait) = limiter.admit("k", limits: limits, tokens: 0, now: Self.t0) else {
            Issue.record("8th call admitted"); return
        }
        #expect(wait == 8_571_429)
        #expect(!limiter.admit("k", limits: limits, tokens: 0, now: Self.t0 + wait - 1).isAllowed)
        #expect(limiter.admit("k", limits: limits, tokens: 0, now: Self.t0 + wait).isAllowed)
        // The k-th call after the burst fits at exactly ⌈k · 60 s / 7⌉: no drift over ten minutes.
        for k in Int64(2)...70 {
            let due = Self.t0 + (k * 60_000_000 + 6) / 7
            #expect(!limiter.admit("k", limits: limits, tokens: 0, now: due - 1).isAllowed, "call \(k)")
            #expect(limiter.admit("k", limits: limits, tokens: 0, now: due).isAllowed, "call \(k)")
        }
    }

    /// A fixed window would allow 60 at 0:59.9 and 60 more at 1:00.1; GCRA earns back only what
    /// the elapsed time pays for.
    @Test func noDoubleBurstAtAMinuteBoundary() {
        let limiter = RateLimiter()
        let limits = RateLimits(requestsPerMinute: 60)
        let minute = 60 * Self.second
        let late = Self.t0 + minute - 100_000  // 0:59.9 into the first minute
        for _ in 0..<60 { #expect(limiter.admit("k", limits: limits, tokens: 0, now: late).isAllowed) }
        var admittedAfterBoundary = 0
        for _ in 0..<60 where limiter.admit("k", limits: limits, tokens: 0, now: Self.t0 + minute + 100_000).isAllowed {
            admittedAfterBoundary += 1
        }
        #expect(admittedAfterBoundary == 0)
        #expect(limiter.admit("k", limits: limits, tokens: 0, now: late + Self.second).isAllowed)
    }

    /// Calls every 10 ms for five minutes: in any interval of length w, at most
    /// limit · (1 + w / 60 s) are admitted, and the steady rate is the limit.
    @Test func admissionsStayUnderTheBurstPlusRateEnvelope() {
        let limiter = RateLimiter()
        let limits = RateLimits(requestsPerMinute: 600)
        var times: [Int64] = []
        var now = Self.t0
        while now < Self.t0 + 300 * Self.second {
            if limiter.admit("k", limits: limits, tokens: 0, now: now).isAllowed { times.append(now - Self.t0) }
            now += 10_000
        }
        #expect((3_590...3_601).contains(times.count), "\(times.count)")
        for w in [Self.second / 2, Self.second, 10 * Self.second, 60 * Self.second] {
            var first = 0, worst = 0
            for last in times.indices {
                while times[last] - times[first] >= w { first += 1 }
                worst = max(worst, last - first + 1)
            }
            #expect(worst <= 600 + Int(600 * w / (60 * Self.second)) + 1, "window \(w) µs: \(worst)")
        }
    }

    @Test("a call a later check refused is given back: its request and its tokens")
    func givenBackCallsConsumeNothing() {
        let limiter = RateLimiter()
        let limits = RateLimits(requestsPerMinute: 2, tokensPerMinute: 1_000)
        for _ in 0..<5 {
            guard case .allowed = limiter.admit("k", limits: limits, tokens: 600, now: Self.t0) else {
                Issue.record("a given-back call still counted")
                return
            }
            limiter.giveBack("k", limits: limits, estimatedTokens: 600, now: Self.t0)
        }
        #expect(limiter.status("k", limits: limits, now: Self.t0) == RateStatus(
            requests: RateMeterStatus(limit: 2, remaining: 2, resetMicros: 0),
            tokens: RateMeterStatus(limit: 1_000, remaining: 1_000, resetMicros: 0)))
    }

    @Test func tokensAreMeteredAndARefusedCallConsumesNothing() {
        let limiter = RateLimiter()
        let limits = RateLimits(requestsPerMinute: 100, tokensPerMinute: 1_000)
        #expect(limiter.admit("k", limits: limits, tokens: 600, now: Self.t0)
                == .allowed(RateStatus(requests: .init(limit: 100, remaining: 99, resetMicros: 600_000),
                                       tokens: .init(limit: 1_000, remaining: 400, resetMicros: 36 * Self.second))))
        // 500 more needs 100 tokens back: 6 s at 1,000 a minute. Nothing is charged.
        let refused = limiter.admit("k", limits: limits, tokens: 500, now: Self.t0)
        #expect(refused == .limited(RateStatus(requests: .init(limit: 100, remaining: 99, resetMicros: 600_000),
                                               tokens: .init(limit: 1_000, remaining: 400, resetMicros: 36 * Self.second)),
                                    which: .tokens, retryAfterMicros: 6 * Self.second))
        #expect(limiter.status("k", limits: limits, now: Self.t0) == refused.status)
        #expect(limiter.admit("k", limits: limits, tokens: 500, now: Self.t0 + 6 * Self.second).isAllowed)
    }

    @Test func theLongerWaitNamesTheLimit() {
        let limiter = RateLimiter()
        let limits = RateLimits(requestsPerMinute: 1, tokensPerMinute: 60)
        #expect(limiter.admit("k", limits: limits, tokens: 30, now: Self.t0).isAllowed)
        // Requests: 60 s until the next; tokens: 40 more need 10 back, 10 s.
        guard case .limited(_, let which, let wait) = limiter.admit("k", limits: limits, tokens: 40, now: Self.t0) else {
            Issue.record("admitted"); return
        }
        #expect(which == .requests && wait == 60 * Self.second)
        let tokensOnly = RateLimits(tokensPerMinute: 60)
        guard case .limited(_, let which2, let wait2) = limiter.admit("k", limits: tokensOnly, tokens: 40, now: Self.t0) else {
            Issue.record("admitted"); return
        }
        #expect(which2 == .tokens && wait2 == 10 * Self.second)
    }

    @Test func aCallLargerThanTheMinuteRunsWhenFullAndSettlementPutsTheKeyInDebt() {
        let limiter = RateLimiter()
        let limits = RateLimits(tokensPerMinute: 1_000)
        #expect(limiter.admit("k", limits: limits, tokens: 100, now: Self.t0).isAllowed)
        guard case .limited(_, .tokens, let wait) = limiter.admit("k", limits: limits, tokens: 5_000, now: Self.t0) else {
            Issue.record("admitted while not full"); return
        }
        #expect(wait == 6 * Self.second)
        let later = Self.t0 + wait
        #expect(limiter.admit("k", limits: limits, tokens: 5_000, now: later).status.tokens?.remaining == 0)
        // It used 3,000: 2,000 beyond the minute's worth, paid back over two more minutes.
        limiter.correct("k", limits: limits, estimatedTokens: 5_000, actualTokens: 3_000, now: later)
        guard case .limited(_, .tokens, let debtWait) = limiter.admit("k", limits: limits, tokens: 1, now: later) else {
            Issue.record("admitted in debt"); return
        }
        #expect(debtWait == 120 * Self.second + 60_000)
    }

    @Test func settlementGivesBackButNeverBeyondFull() {
        let limiter = RateLimiter()
        let limits = RateLimits(tokensPerMinute: 1_000)
        #expect(limiter.admit("k", limits: limits, tokens: 800, now: Self.t0).isAllowed)
        limiter.correct("k", limits: limits, estimatedTokens: 800, actualTokens: 200, now: Self.t0)
        #expect(limiter.status("k", limits: limits, now: Self.t0).tokens
                == RateMeterStatus(limit: 1_000, remaining: 800, resetMicros: 12 * Self.second))
        // 700 more fill the meter until t0 + 54 s; half a minute later, a refund of all 700 stops at full.
        #expect(limiter.admit("k", limits: limits, tokens: 700, now: Self.t0).isAllowed)
        limiter.correct("k", limits: limits, estimatedTokens: 700, actualTokens: 0, now: Self.t0 + 30 * Self.second)
        #expect(limiter.status("k", limits: limits, now: Self.t0 + 30 * Self.second).tokens
                == RateMeterStatus(limit: 1_000, remaining: 1_000, resetMicros: 0))
        // Extra use is charged.
        limiter.correct("k", limits: limits, estimatedTokens: 0, actualTokens: 250, now: Self.t0 + 30 * Self.second)
        #expect(limiter.status("k", limits: limits, now: Self.t0 + 30 * Self.second).tokens?.remaining == 750)
    }

    /// The trial's case: one call of 7,530 tokens under 3,000 a minute, then the limit raised to
    /// 100,000. The debt was kept in time at the old rate, so the next call still waited 1.5 min.
    @Test func aRaisedLimitAppliesToWhatWasAlreadyTaken() {
        let limiter = RateLimiter()
        let old = RateLimits(tokensPerMinute: 3_000), raised = RateLimits(tokensPerMinute: 100_000)
        #expect(limiter.admit("k", limits: old, tokens: 3_000, now: Self.t0).isAllowed)
        limiter.correct("k", limits: old, estimatedTokens: 3_000, actualTokens: 7_530, now: Self.t0)
        #expect(!limiter.admit("k", limits: old, tokens: 10, now: Self.t0).isAllowed)
        // 7,530 of 100,000 taken: 92,470 left, full again in 7,530 · 60 s / 100,000 = 4.518 s.
        #expect(limiter.status("k", limits: raised, now: Self.t0).tokens
                == RateMeterStatus(limit: 100_000, remaining: 92_470, resetMicros: 4_518_000))
        #expect(limiter.admit("k", limits: raised, tokens: 92_470, now: Self.t0).isAllowed)
        #expect(limiter.admit("k", limits: raised, tokens: 1, now: Self.t0)
                == .limited(RateStatus(tokens: .init(limit: 100_000, remaining: 0, resetMicros: 60 * Self.second)),
                            which: .tokens, retryAfterMicros: 600))
        // Requests alike: 10 of 10 a minute taken, then 20 a minute: 10 more now, not in 6 s.
        let requests = RateLimits(requestsPerMinute: 10), more = RateLimits(requestsPerMinute: 20)
        for _ in 0..<10 { #expect(limiter.admit("r", limits: requests, tokens: 0, now: Self.t0).isAllowed) }
        for _ in 0..<10 { #expect(limiter.admit("r", limits: more, tokens: 0, now: Self.t0).isAllowed) }
        #expect(!limiter.admit("r", limits: more, tokens: 0, now: Self.t0).isAllowed)
    }

    /// A call admitted before the reload, settled after it, settles at the meter's own rate: at
    /// the admission's it counted the meter back at 3,000 a minute, dropping what was taken under
    /// 100,000 (99,000 left after a refund, where 9,000 are).
    @Test func aCallAdmittedBeforeARaiseSettlesAtTheNewRate() {
        let limiter = RateLimiter()
        let old = RateLimits(tokensPerMinute: 3_000), raised = RateLimits(tokensPerMinute: 100_000)
        for key in ["under", "over"] {
            #expect(limiter.admit(key, limits: old, tokens: 3_000, now: Self.t0).isAllowed)
            #expect(limiter.admit(key, limits: raised, tokens: 90_000, now: Self.t0).isAllowed)
            #expect(limiter.status(key, limits: raised, now: Self.t0).tokens?.remaining == 7_000)
        }
        limiter.correct("under", limits: old, estimatedTokens: 3_000, actualTokens: 1_000, now: Self.t0)
        #expect(limiter.status("under", limits: raised, now: Self.t0).tokens?.remaining == 9_000)
        limiter.correct("over", limits: old, estimatedTokens: 3_000, actualTokens: 7_530, now: Self.t0)
        #expect(limiter.status("over", limits: raised, now: Self.t0).tokens?.remaining == 2_470)
        // A request given back after the raise alike: one of ten a minute, counted at twenty.
        let requests = RateLimits(requestsPerMinute: 10), more = RateLimits(requestsPerMinute: 20)
        for _ in 0..<10 { #expect(limiter.admit("r", limits: requests, tokens: 0, now: Self.t0).isAllowed) }
        for _ in 0..<10 { #expect(limiter.admit("r", limits: more, tokens: 0, now: Self.t0).isAllowed) }
        limiter.giveBack("r", limits: requests, estimatedTokens: 0, now: Self.t0)
        #expect(limiter.status("r", limits: more, now: Self.t0).requests?.remaining == 1)
    }

    /// Lowered, what a key took fills the new minute at most: 50,000 of 100,000 leave it nothing
    /// of a new 3,000, earned back at 50 a second, not 16 minutes of debt (50,000 at 3,000 a
    /// minute). A key in debt under the old limit waits as long as it did.
    @Test func aLoweredLimitCountsWhatWasTakenUpToItsMinute() {
        let limiter = RateLimiter()
        let old = RateLimits(tokensPerMinute: 100_000), lowered = RateLimits(tokensPerMinute: 3_000)
        #expect(limiter.admit("k", limits: old, tokens: 50_000, now: Self.t0).isAllowed)
        #expect(limiter.status("k", limits: lowered, now: Self.t0).tokens
                == RateMeterStatus(limit: 3_000, remaining: 0, resetMicros: 60 * Self.second))
        #expect(limiter.admit("k", limits: lowered, tokens: 100, now: Self.t0)
                == .limited(RateStatus(tokens: .init(limit: 3_000, remaining: 0, resetMicros: 60 * Self.second)),
                            which: .tokens, retryAfterMicros: 2 * Self.second))
        #expect(limiter.admit("k", limits: lowered, tokens: 100, now: Self.t0 + 2 * Self.second).isAllowed)
        // Below a full minute, what was taken is counted whole: 1,000 of 100,000 are 1,000 of 3,000.
        #expect(limiter.admit("m", limits: old, tokens: 1_000, now: Self.t0).isAllowed)
        #expect(limiter.status("m", limits: lowered, now: Self.t0).tokens
                == RateMeterStatus(limit: 3_000, remaining: 2_000, resetMicros: 20 * Self.second))
        // Two minutes of debt under the old limit stay two minutes.
        #expect(limiter.admit("d", limits: old, tokens: 100_000, now: Self.t0).isAllowed)
        limiter.correct("d", limits: old, estimatedTokens: 100_000, actualTokens: 300_000, now: Self.t0)
        guard case .limited(_, .tokens, let wait) = limiter.admit("d", limits: lowered, tokens: 1, now: Self.t0) else {
            Issue.record("admitted in debt"); return
        }
        #expect(wait == 120 * Self.second + 20_000)
    }

    @Test func limitZeroRefusesAndNilIsUnlimited() {
        let limiter = RateLimiter()
        #expect(limiter.admit("k", limits: RateLimits(requestsPerMinute: 0), tokens: 1, now: Self.t0)
                == .limited(RateStatus(requests: .init(limit: 0, remaining: 0, resetMicros: 0)),
                            which: .requests, retryAfterMicros: 60 * Self.second))
        #expect(limiter.admit("k", limits: RateLimits(maxConcurrent: 3), tokens: 1_000_000, now: Self.t0)
                == .allowed(.unlimited))
        #expect(limiter.trackedKeys == 0)
    }

    @Test func twoKeysAreAdmittedTogetherOrNotAtAll() {
        let limiter = RateLimiter()
        let user = RateLimits(requestsPerMinute: 10), key = RateLimits(requestsPerMinute: 2)
        for _ in 0..<2 {
            #expect(limiter.admit("user:bob", limits: user, and: "key:1", limits: key, tokens: 0, now: Self.t0).isAllowed)
        }
        let refused = limiter.admit("user:bob", limits: user, and: "key:1", limits: key, tokens: 0, now: Self.t0)
        #expect(refused == .limited(RateStatus(requests: .init(limit: 2, remaining: 0, resetMicros: 60 * Self.second)),
                                    which: .requests, retryAfterMicros: 30 * Self.second))
        #expect(limiter.status("user:bob", limits: user, now: Self.t0).requests?.remaining == 8)
        // Allowed: per limit, the key with less left.
        let other = limiter.admit("user:bob", limits: user, and: "key:2", limits: key, tokens: 0, now: Self.t0)
        #expect(other.status.requests == RateMeterStatus(limit: 2, remaining: 1, resetMicros: 30 * Self.second))
    }

    @Test func idleKeysAreForgotten() {
        let limiter = RateLimiter()
        let limits = RateLimits(requestsPerMinute: 60, tokensPerMinute: 6_000)
        for i in 0..<1_000 { _ = limiter.admit("key:\(i)", limits: limits, tokens: 100, now: Self.t0) }
        #expect(limiter.trackedKeys == 1_000)
        _ = limiter.admit("key:0", limits: limits, tokens: 100, now: Self.t0 + 30 * Self.second)
        #expect(limiter.trackedKeys == 1_000)
        _ = limiter.admit("key:0", limits: limits, tokens: 100, now: Self.t0 + 61 * Self.second)
        #expect(limiter.trackedKeys == 1)
    }
}

extension RateDecision {
    var isAllowed: Bool {
        if case .allowed = self { return true }
        return false
    }
}
