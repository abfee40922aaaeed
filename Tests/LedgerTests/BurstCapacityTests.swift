import Ledger
import Testing

/// Buffers a writer reuses keep their room between batches up to a bound, not what a burst grew
/// them to.
@Suite struct BurstCapacityTests {
    @Test func roomUpToTheLimitIsKeptForReuse() {
        var rows = Array(0..<100)
        let room = rows.capacity
        rows.removeAll(keepingCapacityUpTo: 256)
        #expect(rows.isEmpty)
        #expect(rows.capacity == room)
    }

    @Test func roomABurstGrewPastTheLimitIsGivenBack() {
        var rows = Array(0..<1_000)
        rows.removeAll(keepingCapacityUpTo: 256)
        #expect(rows.isEmpty)
        #expect(rows.capacity == 0)
    }
}
