import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import Gateway

/// When the allocator is asked to give memory back, and on which threads.
@Suite struct MemoryReturnTests {
    /// mimalloc returns a page only on the thread that owns it: after a busy spell the give-back
    /// runs once on each allocating thread (and once off them), not again while idle; forced once
    /// no call is in flight, plain while calls still run (in flight halved).
    @Test func afterABusySpellEachAllocatingThreadGivesBackOnce() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        let loops = Array(group.makeIterator())
        let inFlight = Atomic<Int>(0)
        let checks = Atomic<Int>(0)
        let onThreads = Atomic<Int>(0)
        let threads: [MemoryReturn.Thread] = loops.map { loop in
            { @Sendable work in loop.execute { onThreads.add(1, ordering: .relaxed); work() } }
        }
        let collects = Atomic<Int>(0)
        let plain = Atomic<Int>(0)
        let memory = MemoryReturn(on: loops[0], allocatingThreads: threads,
                                  giveBack: .onEachThread { force in
                                      collects.add(1, ordering: .relaxed)
                                      if !force { plain.add(1, ordering: .relaxed) }
                                  },
                                  interval: .milliseconds(20)) {
            checks.add(1, ordering: .relaxed)
            return inFlight.load(ordering: .relaxed)
        }
        /// Waits until `count` more checks have run (each saw the value set before).
        func checked(_ count: Int = 2) async throws {
            let target = checks.load(ordering: .relaxed) + count
            let deadline = ContinuousClock.now + .seconds(10)
            while checks.load(ordering: .relaxed) < target, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        /// Waits until `count` collects have run (on the loops: their own pace).
        func collected(_ count: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(10)
            while collects.load(ordering: .relaxed) < count, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
        }

        try await checked(3)
        #expect(collects.load(ordering: .relaxed) == 0, "never busy: nothing to give back")
        inFlight.store(100, ordering: .relaxed)
        try await checked()
        #expect(collects.load(ordering: .relaxed) == 0, "busy: nothing yet")
        inFlight.store(0, ordering: .relaxed)
        try await collected(4)
        // Each of the three loops, and once off them.
        #expect(collects.load(ordering: .relaxed) == 4)
        #expect(onThreads.load(ordering: .relaxed) == 3)
        try await checked(3)
        #expect(collects.load(ordering: .relaxed) == 4, "idle since: not again")

        #expect(plain.load(ordering: .relaxed) == 0, "none in flight: forced")

        // Halved, not idle: on each thread too, but plain (calls still run on them).
        inFlight.store(20, ordering: .relaxed)
        try await checked()
        inFlight.store(10, ordering: .relaxed)
        try await collected(8)
        try await checked()
        #expect(collects.load(ordering: .relaxed) == 8)
        #expect(onThreads.load(ordering: .relaxed) == 6)
        #expect(plain.load(ordering: .relaxed) == 3, "the threads' collects plain, the one off them forced")
        inFlight.store(0, ordering: .relaxed)
        try await collected(12)
        #expect(onThreads.load(ordering: .relaxed) == 9)
        #expect(plain.load(ordering: .relaxed) == 3)
        memory.stop()
        try await group.shutdownGracefully()
    }
}
