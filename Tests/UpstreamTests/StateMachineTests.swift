import Testing
@testable import Upstream

private struct Failure: Error, Equatable {
    var name: String
}

// `#expect` cannot wrap a mutating call, so each test collects the answers
// in order and compares them once.
@Suite struct DeliveryStateMachineTests {
    private typealias End = Result<Int, Failure>
    private let cancelled = Failure(name: "cancelled")

    @Test func headBodyEndInOrder() {
        var m = DeliveryStateMachine()
        let forwarded = [m.headArrived(), m.bodyArrived(), m.bodyArrived()]
        let end = m.endArrived(End.success(1), cancelled: cancelled)
        let secondEnd = m.endArrived(End.success(2), cancelled: cancelled)
        #expect(forwarded == [true, true, true])
        #expect(end == .success(1))
        #expect(secondEnd == nil)
        #expect(m.state == .ended)
        #expect(!m.bodyArrived())
    }

    @Test func errorBeforeHeadIsDelivered() {
        var m = DeliveryStateMachine()
        let end = m.endArrived(End.failure(Failure(name: "connect")), cancelled: cancelled)
        #expect(end == .failure(Failure(name: "connect")))
    }

    @Test func cancelSilencesEverythingButOneCancelledEnd() {
        var m = DeliveryStateMachine()
        let answers = [m.headArrived(), m.cancel(), m.cancel(), m.bodyArrived(), m.pause()]
        // Even a natural success that raced the cancel reports `.cancelled`.
        let end = m.endArrived(End.success(1), cancelled: cancelled)
        let again = m.endArrived(End.failure(cancelled), cancelled: cancelled)
        #expect(answers == [true, true, false, false, false])
        #expect(end == .failure(cancelled))
        #expect(again == nil)
    }

    @Test func cancelBeforeHeadDropsTheHead() {
        var m = DeliveryStateMachine()
        let answers = [m.cancel(), m.headArrived()]
        #expect(answers == [true, false])
    }

    @Test func cancelAfterEndIsANoOp() {
        var m = DeliveryStateMachine()
        _ = m.endArrived(End.success(1), cancelled: cancelled)
        let answers = [m.cancel(), m.pause(), m.resume()]
        #expect(answers == [false, false, false])
    }

    @Test func pauseAndResumeOnlyAskWhenTheyChangeSomething() {
        var m = DeliveryStateMachine()
        let beforeHead = [m.pause(), m.pause(), m.headArrived()]
        let pausedState = m.state
        // Data of the curl pass already in flight still arrives while paused.
        let whilePaused = [m.bodyArrived(), m.resume(), m.resume()]
        #expect(beforeHead == [true, false, true])
        #expect(pausedState == .streaming(paused: true))
        #expect(whilePaused == [true, true, false])
        #expect(m.state == .streaming(paused: false))
    }
}

@Suite struct CurlTransferStateMachineTests {
    @Test func pauseResumeOnlyWhileRunning() {
        var m = CurlTransferStateMachine()
        let beforeAdd = m.pause()
        m.added()
        let running = [m.resume(), m.pause(), m.pause(), m.resume(), m.completed()]
        let afterEnd = [m.pause(), m.resume()]
        #expect(!beforeAdd)
        #expect(running == [false, true, false, true, true])
        #expect(afterEnd == [false, false])
    }

    @Test func cancelAndCompletionFinishOnce() {
        var cancelledFirst = CurlTransferStateMachine()
        cancelledFirst.added()
        let a = [cancelledFirst.cancel(), cancelledFirst.completed()]
        var completedFirst = CurlTransferStateMachine()
        completedFirst.added()
        let b = [completedFirst.completed(), completedFirst.cancel()]
        #expect(a == [true, false])
        #expect(b == [true, false])
    }

    @Test("a transfer held for a connection remembers a pause, applies it when added, and can be cancelled")
    func heldTransfer() {
        var m = CurlTransferStateMachine()
        m.hold()
        let whileHeld = [m.pause(), m.resume(), m.pause()]
        let pauseWhenAdded = m.added()
        #expect(whileHeld == [false, false, false])
        #expect(pauseWhenAdded)
        #expect(m.phase == .running(paused: true))

        var cancelled = CurlTransferStateMachine()
        cancelled.hold()
        let answers = [cancelled.cancel(), cancelled.completed()]
        #expect(answers == [true, false])
    }

    @Test func setupFailureBeforeAddStillFinishes() {
        var m = CurlTransferStateMachine()
        let first = m.completed()
        #expect(first)
        #expect(m.phase == .finished)
    }
}
