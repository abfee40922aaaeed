import Ledger
import NIOCore
import PostgresNIO

/// The rollup cells of a PostgreSQL ledger's pruned calls (`rollup_cells_pruned`, schema v2):
/// SQLite's cells, keys as values (`RollupTransfer.Cell`), written by `PostgresLedgerPrune`
/// and loaded into each report's temporary SQLite ledger (`ReportCopy`).
enum PrunedRollupCells {
    private static let keyColumns = RollupTransfer.keyColumns.map { $0 == "user" ? "\"user\"" : $0 }
    private static let columns = ["level", "span", "number"] + keyColumns + RollupTransfer.figureColumns
        + RollupTransfer.histogramColumns
    /// Cells per INSERT (one array per column each).
    private static let chunk = 5_000

    /// Inserts `cells` (inside the caller's transaction).
    static func store(_ cells: [RollupTransfer.Cell], on session: PostgresSession) throws {
        let types = ["text", "text", "int8"] + keyColumns.map { _ in "text" } + RollupTransfer.figureColumns.map { _ in "int8" }
            + RollupTransfer.histogramColumns.map { _ in "bytea" }
        let sql = """
            INSERT INTO rollup_cells_pruned (\(columns.joined(separator: ", ")))
            SELECT * FROM unnest(\(types.indices.map { "$\($0 + 1)::\(types[$0])[]" }.joined(separator: ", ")))
            """
        for start in stride(from: 0, to: cells.count, by: chunk) {
            let part = cells[start..<min(start + chunk, cells.count)]
            var binds = PostgresBindings(capacity: columns.count)
            binds.append(part.map(\.level))
            binds.append(part.map(\.span))
            binds.append(part.map(\.number))
            for index in RollupTransfer.keyColumns.indices { binds.append(NullableArray<String>(part.map { $0.key[index] })) }
            for index in RollupTransfer.figureColumns.indices { binds.append(part.map { $0.figures[index] }) }
            for index in RollupTransfer.histogramColumns.indices {
                binds.append(part.map { ByteBuffer(bytes: $0.histograms[index]) })
            }
            try session.query(PostgresQuery(unsafeSQL: sql, binds: binds), context: "store \(part.count) pruned rollup cells")
        }
    }

    /// The stored cells of the hours and days that overlap `[since, until)` (Unix µs).
    static func load(since: Int64, until: Int64, on session: PostgresSession) throws -> [RollupTransfer.Cell] {
        let hour: Int64 = 3_600_000_000, day = UnixTime.microsPerDay
        func floor(_ x: Int64, _ unit: Int64) -> Int64 { x / unit - (x % unit < 0 ? 1 : 0) }
        let rows = try session.query("""
            SELECT \(unescaped: columns.joined(separator: ", ")) FROM rollup_cells_pruned
            WHERE (span = 'hour' AND number >= \(floor(since, hour)) AND number <= \(floor(until - 1, hour)))
               OR (span = 'day' AND number >= \(floor(since, day)) AND number <= \(floor(until - 1, day)))
            """, context: "load pruned rollup cells")
        let figures = RollupTransfer.figureColumns.count, first = 3 + keyColumns.count
        return try rows.map { row in
            let r = row.makeRandomAccess()
            return RollupTransfer.Cell(
                level: try r.value(0), span: try r.value(1), number: try r.value(2),
                key: try keyColumns.indices.map { try r.value(3 + $0, as: String?.self) },
                figures: try (0..<figures).map { try r.value(first + $0, as: Int64.self) },
                histograms: try RollupTransfer.histogramColumns.indices.map {
                    [UInt8](try r.value(first + figures + $0, as: ByteBuffer.self).readableBytesView)
                })
        }
    }
}
