import Testing
@testable import Upstream

/// Which kept easy handles are freed: those not taken again for `idleRelease`, the least
/// recently used first, down to `keptWhenIdle`.
@Suite struct CurlEasyHandlePoolTests {
    private let start = ContinuousClock.now
    private func at(_ ms: Int) -> ContinuousClock.Instant { start + .milliseconds(ms) }

    /// A pool (1 s release, 2 kept) given back `count` handles, the i-th at `givenAt[i]` ms.
    private func pool(givenAt: [Int]) throws -> CurlEasyHandlePool {
        var pool = CurlEasyHandlePool(capacity: 8, idleRelease: .seconds(1), keptWhenIdle: 2)
        var handles: [CurlEasyHandle] = []
        for _ in givenAt {
            let handle = pool.take()
            handles.append(try #require(handle))
        }
        for (handle, ms) in zip(handles, givenAt) { pool.give(handle, now: at(ms)) }
        return pool
    }

    @Test func handlesUnusedForTheWholeSpellAreFreedDownToTheFewKept() throws {
        var pool = try pool(givenAt: [0, 0, 0, 0, 0])
        let early = pool.freeUnused(now: at(999))
        #expect(early == 0)
        let due = pool.freeUnused(now: at(1_000))
        #expect(due == 3)
        #expect(pool.count == 2)
        let later = pool.freeUnused(now: at(60_000))
        #expect(later == 0)  // the few kept stay for a trickle of calls
    }

    @Test func theLeastRecentlyUsedGoFirstAndRecentOnesStay() throws {
        // Given back at 0, 100, 500, 900 and 1,500 ms: at 1,450 ms the first two are due.
        var pool = try pool(givenAt: [0, 100, 500, 900, 1_500])
        let freed = pool.freeUnused(now: at(1_450))
        #expect(freed == 2)
        #expect(pool.count == 3)
        // The most recently given back is the one taken next.
        let next = pool.take()
        #expect(next != nil)
        let afterTake = pool.freeUnused(now: at(1_950))
        #expect(afterTake == 0)  // 2 left: all kept
    }

    @Test func aHandleTakenAgainStartsItsSpellAgain() throws {
        var pool = try pool(givenAt: [0, 0, 0])
        let taken = pool.take()
        pool.give(try #require(taken), now: at(800))
        let freed = pool.freeUnused(now: at(1_200))
        #expect(freed == 1)  // of the two given back at 0: the third is the one given back at 800
        let rest = pool.freeUnused(now: at(1_799))
        #expect(rest == 0)
        #expect(pool.count == 2)
    }

    @Test func nothingToLookAtWithinTheFewKept() throws {
        var pool = try pool(givenAt: [0, 0])
        var readClock = false
        let freed = pool.freeUnused(now: { readClock = true; return at(10_000) }())
        #expect(freed == 0 && !readClock)
    }
}
