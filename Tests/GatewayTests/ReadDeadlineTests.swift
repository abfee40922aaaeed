import NIOCore
import NIOPosix
import Testing
@testable import Gateway

/// The connection's read deadline: one timer, re-armed only when it would fire too late.
@Suite("Read deadline bookkeeping")
struct ReadDeadlineTests {
    let loop = MultiThreadedEventLoopGroup.singleton.next()
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func timer() -> Scheduled<Void> { loop.scheduleTask(in: .hours(1)) {} }

    @Test("the first deadline arms the timer; a later one is only written down")
    func laterDeadlineDoesNotRearm() {
        var deadline = ReadDeadline()
        let armsFirst = deadline.expect(.request, by: t0 + .seconds(60))
        #expect(armsFirst)
        deadline.armed(timer(), at: t0 + .seconds(60))
        deadline.satisfied()
        let armsBody = deadline.expect(.body(timeoutMs: 60_000), by: t0 + .seconds(61))
        let armsNext = deadline.expect(.request, by: t0 + .seconds(62))
        #expect(!armsBody && !armsNext)
        // Fired at the first deadline: the awaited one moved later, so it re-arms for it.
        let firing = deadline.fired(now: t0 + .seconds(60))
        #expect(firing == .rearm(at: t0 + .seconds(62)))
    }

    @Test("an earlier deadline than the armed timer re-arms it")
    func earlierDeadlineRearms() {
        var deadline = ReadDeadline()
        _ = deadline.expect(.request, by: t0 + .seconds(60))
        deadline.armed(timer(), at: t0 + .seconds(60))
        let arms = deadline.expect(.body(timeoutMs: 5_000), by: t0 + .seconds(5))
        #expect(arms)
    }

    @Test("expiry names what was awaited, once; a satisfied wait expires nothing")
    func expiry() {
        var deadline = ReadDeadline()
        _ = deadline.expect(.body(timeoutMs: 5_000), by: t0 + .seconds(5))
        deadline.armed(timer(), at: t0 + .seconds(5))
        let firing = deadline.fired(now: t0 + .seconds(5))
        #expect(firing == .expired(.body(timeoutMs: 5_000)))
        #expect(deadline.pending == nil)
        // The timer is gone once fired: the next wait arms a new one.
        let arms = deadline.expect(.request, by: t0 + .seconds(70))
        #expect(arms)
        deadline.armed(timer(), at: t0 + .seconds(70))
        deadline.satisfied()
        let nothing = deadline.fired(now: t0 + .seconds(70))
        #expect(nothing == .idle)
    }

    @Test("cancel forgets the wait and cancels the timer")
    func cancel() {
        var deadline = ReadDeadline()
        _ = deadline.expect(.request, by: t0 + .seconds(60))
        let scheduled = timer()
        deadline.armed(scheduled, at: t0 + .seconds(60))
        deadline.cancel()
        #expect(deadline.pending == nil)
        let arms = deadline.expect(.request, by: t0 + .seconds(90))
        #expect(arms)
        #expect(throws: EventLoopError.self) { try scheduled.futureResult.wait() }
    }
}
