/// Rollup cells moved between SQLite ledgers by their keys' values, not their key ids (ids are
/// local to one file). A PostgreSQL ledger prunes with it: the cells of the pruned calls are
/// computed in a temporary SQLite ledger (by the writer's own rollup code), taken out with
/// `cells`, kept in PostgreSQL, and put back into each report's temporary ledger with `adopt`,
/// which makes that ledger answer like a SQLite ledger pruned at the same date.
public enum RollupTransfer {
    /// One stored cell: where it is (level, span, number) and what it holds, column for column.
    public struct Cell: Sendable, Hashable {
        /// "detailed" or "payer" (payer cells have no model, provider or key).
        public var level: String
        /// "hour" or "day".
        public var span: String
        /// Hours or days since 1970 (UTC).
        public var number: Int64
        /// The values of `keyColumns`, in order (model, provider and key are nil at the payer level).
        public var key: [String?]
        /// The values of `figureColumns`, in order.
        public var figures: [Int64]
        /// The values of `histogramColumns` (`SparseHistogram` encoding), in order.
        public var histograms: [[UInt8]]

        public init(level: String, span: String, number: Int64, key: [String?], figures: [Int64], histograms: [[UInt8]]) {
            self.level = level
            self.span = span
            self.number = number
            self.key = key
            self.figures = figures
            self.histograms = histograms
        }
    }

    /// The dimensions of a cell's key (the detailed level's `rollup_keys` columns).
    public static let keyColumns = RollupLevel.detailed.keyColumns
    /// The cell columns holding integers (counts, exact Int128 halves, quarter-hour presence).
    public static let figureColumns = RollupStore.cellColumnNames.filter { !histogramColumns.contains($0) }
    public static let histogramColumns = ["latency_hist", "ttft_hist"]

    /// Every cell, at both levels and both spans, of the hours and days in `[since, until)`
    /// (Unix µs; UTC midnights, so that hour and day cells cover the same calls).
    public static func cells(ofLedgerAt path: String, since: Int64, until: Int64) throws -> [Cell] {
        let connection = try SQLiteConnection(path: path, mode: .readWrite)
        defer { connection.close() }
        var cells: [Cell] = []
        for level in RollupLevel.allCases {
            let keys = try RollupStore.keys(level, on: connection)
            for span in RollupSpan.allCases {
                let s = try connection.prepare("""
                    SELECT \(span.column), key, \((figureColumns + histogramColumns).joined(separator: ", "))
                    FROM \(level.table(span)) WHERE \(span.column) >= ?1 AND \(span.column) < ?2
                    """)
                defer { s.finalize() }
                s.bind(span.number(of: since), at: 1)
                s.bind(-span.number(of: -until), at: 2)
                while try s.step() {
                    guard let key = keys[s.int64(at: 1)] else { throw LedgerError.invalidRow("rollup cell without key") }
                    let figures = (0..<Int32(figureColumns.count)).map { s.int64(at: 2 + $0) }
                    let first = 2 + Int32(figureColumns.count)
                    let histograms = (0..<Int32(histogramColumns.count)).map { c in
                        s.withBlob(at: first + c) { [UInt8]($0) }
                    }
                    cells.append(Cell(level: level.name, span: span.column, number: s.int64(at: 0),
                                      key: [key.user, key.team, key.model, key.provider, key.plan, key.keyId],
                                      figures: figures, histograms: histograms))
                }
            }
        }
        return cells
    }

    /// Makes the ledger at `path` what pruning it at `mark` (a UTC midnight) would make it, with
    /// `cells` as the cells before the mark: in one transaction, deletes its calls and cells
    /// before the mark, stores `cells` (which must all lie before it) and records the mark.
    /// For a ledger no writer has open (a report's temporary copy).
    public static func adopt(_ cells: [Cell], prunedBefore mark: Int64, inLedgerAt path: String) throws {
        let connection = try SQLiteConnection(path: path)
        defer { connection.close() }
        try connection.configureForLedger()
        try connection.execute("BEGIN IMMEDIATE")
        do {
            let delete = try connection.prepare("DELETE FROM calls WHERE started_at < ?1")
            delete.bind(mark, at: 1)
            try delete.run()
            delete.finalize()
            for level in RollupLevel.allCases {
                for span in RollupSpan.allCases {
                    try connection.execute("DELETE FROM \(level.table(span)) WHERE \(span.column) < \(span.number(of: mark))")
                }
            }
            try insert(cells, on: connection)
            let record = try connection.prepare("""
                INSERT INTO meta (name, value) VALUES ('\(LedgerPrune.markName)', ?1)
                ON CONFLICT (name) DO UPDATE SET value = excluded.value
                """)
            record.bind(mark, at: 1)
            try record.run()
            record.finalize()
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }

    private static func insert(_ cells: [Cell], on connection: SQLiteConnection) throws {
        let store = try RollupStore(connection: connection)
        defer { store.finalize() }
        var inserts: [String: Statement] = [:]
        defer { for s in inserts.values { s.finalize() } }
        let columns = figureColumns + histogramColumns
        for cell in cells {
            guard let level = RollupLevel(name: cell.level), let span = RollupSpan(column: cell.span),
                  cell.key.count == keyColumns.count, cell.figures.count == figureColumns.count,
                  cell.histograms.count == histogramColumns.count else {
                throw LedgerError.invalidRow("rollup cell \(cell.level) \(cell.span) \(cell.number) is malformed")
            }
            let table = level.table(span)
            let insert = try inserts[table] ?? connection.prepare("""
                INSERT INTO \(table) (\(span.column), key, \(columns.joined(separator: ", ")))
                VALUES (\((1...columns.count + 2).map { "?\($0)" }.joined(separator: ", ")))
                """)
            inserts[table] = insert
            let key = RollupKey(user: cell.key[0], team: cell.key[1], model: cell.key[2], provider: cell.key[3],
                                plan: cell.key[4], keyId: cell.key[5])
            insert.bind(cell.number, at: 1)
            insert.bind(try store.id(of: key, at: level), at: 2)
            for (offset, value) in cell.figures.enumerated() { insert.bind(value, at: 3 + Int32(offset)) }
            for (offset, bytes) in cell.histograms.enumerated() {
                insert.bind(blob: bytes, at: 3 + Int32(figureColumns.count + offset))
            }
            try insert.run()
        }
    }
}

extension RollupLevel {
    /// The level's name in `RollupTransfer.Cell`.
    var name: String { self == .detailed ? "detailed" : "payer" }

    init?(name: String) {
        guard let level = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = level
    }
}

extension RollupSpan {
    init?(column: String) {
        guard let span = Self.allCases.first(where: { $0.column == column }) else { return nil }
        self = span
    }
}
