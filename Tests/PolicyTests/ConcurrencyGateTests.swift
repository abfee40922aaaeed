import Dispatch
import Synchronization
import Testing
@testable import Policy

@Suite struct ConcurrencyGateTests {
    @Test func countsInFlightCallsPerKey() {
        let gate = ConcurrencyGate()
        #expect(gate.tryAcquire("user:bob", limit: 2))
        #expect(gate.tryAcquire("user:bob", limit: 2))
        #expect(!gate.tryAcquire("user:bob", limit: 2))
        #expect(gate.tryAcquire("user:amy", limit: 2))
        #expect(gate.inFlight("user:bob") == 2 && gate.totalInFlight == 3)
        gate.release("user:bob")
        #expect(gate.tryAcquire("user:bob", limit: 2))
        // A lowered limit refuses until enough calls end; a lifted one still counts.
        #expect(!gate.tryAcquire("user:bob", limit: 1))
        #expect(gate.tryAcquire("user:bob", limit: nil))
        #expect(gate.inFlight("user:bob") == 3)
        for _ in 0..<3 { gate.release("user:bob") }
        gate.release("user:bob")  // unbalanced: no-op, never negative
        #expect(gate.inFlight("user:bob") == 0 && gate.totalInFlight == 1)
        #expect(!gate.tryAcquire("user:carl", limit: 0))
        #expect(gate.inFlight("user:carl") == 0)
    }

    @Test func neverMoreThanTheLimitAcrossThreads() {
        let gate = ConcurrencyGate()
        let peak = Mutex((current: 0, highest: 0))
        DispatchQueue.concurrentPerform(iterations: 5_000) { _ in
            guard gate.tryAcquire("user:bob", limit: 3) else { return }
            peak.withLock { $0.current += 1; $0.highest = max($0.highest, $0.current) }
            peak.withLock { $0.current -= 1 }
            gate.release("user:bob")
        }
        #expect(peak.withLock { $0.highest } <= 3)
        #expect(gate.inFlight("user:bob") == 0 && gate.totalInFlight == 0)
    }
}
