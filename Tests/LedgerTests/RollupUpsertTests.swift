import Testing
@testable import Ledger
import LedgerTestSupport

/// `RollupUpsert`: a delta added to a stored cell in SQL sums exactly what `RollupCell.absorb` does.
@Suite struct RollupUpsertTests {
    @Test("adding to a stored cell: counts, Int128 money past 64 bits, histograms and quarters")
    func addsToStoredCell() throws {
        let dir = try TemporaryDirectory()
        let connection = try SQLiteConnection(path: dir.path())
        defer { connection.close() }
        try Schema.migrate(connection)
        var first = RollupCell()
        first.requests = 2
        first.timed = 2
        first.latencySum = 700
        first.cost = 3 * Int128(Int64.max) - 5  // a high half of 1 already
        first.retries = 1
        first.retryCost = Int128(Int64.max)
        first.latency = SparseHistogram(values: [300, 400])
        first.quarters = 0b0001
        var second = RollupCell()
        second.requests = 1
        second.refused = 1
        second.cost = 2 * Int128(Int64.max)
        second.latency = SparseHistogram(values: [400, 90_000])
        second.retries = 1
        second.retryCost = -3
        second.ttft = SparseHistogram(values: [90])
        second.quarters = 0b1000
        second.quartersHigh = 1

        let store = try RollupStore(connection: connection)
        try connection.execute("BEGIN IMMEDIATE")
        let key = try store.id(of: RollupKey(user: "u", team: nil, model: "m", provider: nil, plan: nil, keyId: nil), at: .detailed)
        let address = CellAddress(level: .detailed, span: .hour, number: 490_000, key: key)
        try store.merge(first, into: address)
        try store.merge(second, into: address)
        try connection.execute("COMMIT")
        store.finalize()

        var expected = first
        expected.absorb(second)
        let s = try connection.prepare("SELECT \(RollupStore.cellColumns) FROM rollup_hours WHERE hour = 490000 AND key = \(key)")
        defer { s.finalize() }
        #expect(try s.step())
        #expect(RollupStore.decodeCell(s, from: 0) == expected)
        #expect(expected.cost == 5 * Int128(Int64.max) - 5 && expected.cost.storedParts.high == 2)
    }
}
