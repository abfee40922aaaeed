/// Migration v6's backfill: the payer-level cells, summed from the detailed cells of v5 (every
/// call is in exactly one detailed cell per span, so their sums per payer key are the payer
/// cells, the same the writer would have built). Streams each table in span order, one span
/// number's cells in memory at a time.
enum PayerRollupBackfill {
    static func run(_ connection: SQLiteConnection) throws {
        // v6 runs before v12 gives cells their search counts.
        let store = try RollupStore(connection: connection, levels: [.payer], searches: false)
        defer { store.finalize() }
        var payerOf: [Int64: Int64] = [:]
        for (id, key) in try RollupStore.keys(.detailed, on: connection) {
            payerOf[id] = try store.id(of: key, at: .payer)
        }
        for span in RollupSpan.allCases {
            let s = try connection.prepare("""
                SELECT \(span.column), key, \(RollupStore.cellColumnNames(searches: false).joined(separator: ", ")) FROM \(RollupLevel.detailed.table(span))
                ORDER BY \(span.column)
                """)
            var number = Int64.min
            var cells: [Int64: RollupCell] = [:]
            func flush() throws {
                for (key, cell) in cells {
                    try store.merge(cell, into: CellAddress(level: .payer, span: span, number: number, key: key))
                }
                cells.removeAll(keepingCapacity: true)
            }
            while try s.step() {
                let next = s.int64(at: 0)
                if next != number { try flush(); number = next }
                guard let payer = payerOf[s.int64(at: 1)] else {
                    throw LedgerError.invalidRow("rollup cell \(span) \(next) has no rollup key \(s.int64(at: 1))")
                }
                cells[payer, default: RollupCell()].absorb(RollupStore.decodeCell(s, from: 2, searches: false))
            }
            try flush()
        }
    }
}
