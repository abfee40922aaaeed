import Ledger
import Testing

/// Buffers a writer reuses keep their room between batches of about the same size, and give
/// back what a burst grew them to at the first batch well below it.
@Suite struct BurstCapacityTests {
    /// An array with room for `room` elements holding `used`.
    private func buffer(room: Int, used: Int) -> [Int] {
        var rows: [Int] = []
        rows.reserveCapacity(room)
        rows.append(contentsOf: 0..<used)
        return rows
    }

    @Test func aSteadyLoadKeepsItsRoom() {
        var rows = buffer(room: 1_000, used: 900)
        let room = rows.capacity
        rows.removeAll(keepingRoomAbove: 256)
        #expect(rows.isEmpty && rows.capacity == room)
    }

    @Test func roomUpToTheFloorIsKeptWhateverTheUse() {
        var rows = buffer(room: 200, used: 1)
        let room = rows.capacity
        rows.removeAll(keepingRoomAbove: 256)
        #expect(rows.isEmpty && rows.capacity == room)
    }

    @Test func theRoomABurstLeftGoesAtTheFirstUseWellBelowIt() {
        var rows = buffer(room: 1_000, used: 10)
        rows.removeAll(keepingRoomAbove: 256)
        #expect(rows.isEmpty && rows.capacity == 0)
    }
}
