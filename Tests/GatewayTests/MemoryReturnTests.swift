import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import Gateway

/// When the allocator is asked to give memory back, and on which threads.
@Suite struct MemoryReturnTests {
    /// mimalloc returns a page only on the thread that owns it: after a busy spell, the give-back
    /// runs once on each allocating thread (and once off them), not again while idle, and again
    /// after the next spell.
    @Test func afterABusySpellEachAllocatingThreadGivesBackOnce() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 3)
        let loops = Array(group.makeIterator())
        let inFlight = Atomic<Int>(0)
        let ranOn = Mutex<[String]>([])
        let threads: [MemoryReturn.Thread] = loops.enumerated().map { i, loop in
            { @Sendable work in loop.execute { if loop.inEventLoop { ranOn.withLock { $0.append("loop-\(i)") } }; work() } }
        }
        let collects = Atomic<Int>(0)
        let memory = MemoryReturn(on: loops[0], allocatingThreads: threads,
                                  giveBack: .onEachThread { collects.add(1, ordering: .relaxed) },
                                  interval: .milliseconds(50)) { inFlight.load(ordering: .relaxed) }
        func settle() async throws { try await Task.sleep(for: .milliseconds(400)) }

        try await settle()
        #expect(collects.load(ordering: .relaxed) == 0, "never busy: nothing to give back")
        inFlight.store(100, ordering: .relaxed)
        try await settle()
        #expect(collects.load(ordering: .relaxed) == 0, "busy: nothing yet")
        inFlight.store(0, ordering: .relaxed)
        try await settle()
        // Three loops and once off them.
        #expect(collects.load(ordering: .relaxed) == 4)
        #expect(ranOn.withLock { $0.sorted() } == ["loop-0", "loop-1", "loop-2"])
        try await settle()
        #expect(collects.load(ordering: .relaxed) == 4, "idle since: not again")
        inFlight.store(10, ordering: .relaxed)
        try await settle()
        inFlight.store(0, ordering: .relaxed)
        try await settle()
        #expect(collects.load(ordering: .relaxed) == 8)
        memory.stop()
        try await group.shutdownGracefully()
    }
}
