import Testing
@testable import Upstream

/// When the pool of kept easy handles empties: after `idleRelease` without a transfer running
/// or waiting, never while one does.
@Suite struct CurlEasyHandlePoolTests {
    /// A pool of `count` kept handles, and the passes of the curl thread it sees, each
    /// `(busy, milliseconds after the first)`; returns at which passes it emptied, and the pool.
    private func passes(holding count: Int, _ passes: [(busy: Bool, ms: Int)]) throws -> (emptiedAt: [Int], pool: CurlEasyHandlePool) {
        var pool = CurlEasyHandlePool(capacity: 4, idleRelease: .seconds(1))
        var handles: [CurlEasyHandle] = []
        for _ in 0..<count {
            let handle = pool.take()
            handles.append(try #require(handle))
        }
        for handle in handles { pool.give(handle) }
        let start = ContinuousClock.now
        var emptied: [Int] = []
        for pass in passes where pool.release(busy: pass.busy, now: start + .milliseconds(pass.ms)) {
            emptied.append(pass.ms)
        }
        return (emptied, pool)
    }

    @Test func emptiesOnceIdleForTheWholeSpell() throws {
        let idle = try passes(holding: 2, [(false, 0), (false, 999), (false, 1_000), (false, 5_000)])
        #expect(idle.emptiedAt == [1_000])
        #expect(idle.pool.count == 0)
    }

    @Test func aBusyPassStartsTheSpellAgain() throws {
        let idle = try passes(holding: 2, [(false, 0), (true, 900), (false, 1_100), (false, 2_000), (false, 2_100)])
        #expect(idle.emptiedAt == [2_100])
    }

    @Test func neverWhileBusy() throws {
        let busy = try passes(holding: 3, (0..<10).map { (true, $0 * 1_000) })
        #expect(busy.emptiedAt.isEmpty)
        #expect(busy.pool.count == 3)
    }

    @Test func anEmptyPoolHasNoSpellToTime() throws {
        var pool = CurlEasyHandlePool(capacity: 4, idleRelease: .seconds(1))
        let start = ContinuousClock.now
        let whileEmpty = pool.release(busy: false, now: start)
        #expect(!whileEmpty)
        let taken = pool.take()
        pool.give(try #require(taken))
        // The spell starts when there is something to free, not when the pool was seen empty.
        let soon = pool.release(busy: false, now: start + .seconds(2))
        let later = pool.release(busy: false, now: start + .seconds(3))
        #expect(!soon && later)
        #expect(pool.count == 0)
    }
}
