import CSQLite

/// Adds to rollup cells and keeps key ids on one connection, inside the caller's transaction
/// (the writer's, or a migration's), so rollups always commit or roll back with their calls.
///
/// Key ids are kept in memory, only valid while this connection is the ledger's only writer and
/// its transactions commit: after a rollback, or once another connection wrote, call `reload()`.
final class RollupStore {
    /// The cell columns of schema v5 to v11.
    static let cellColumnNamesBeforeSearches = [
        "requests", "refused", "errors", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
        "reasoning_tokens", "cost_pd", "cost_pd_high", "timed", "latency_sum_us", "retries", "retry_cost_pd",
        "retry_cost_pd_high", "latency_hist", "ttft_hist", "quarters", "quarters_high",
    ]
    /// The cell columns (v12 added the search counts).
    static let cellColumnNames = cellColumnNamesBeforeSearches + ["web_searches", "file_searches"]
    static let cellColumns = cellColumnNames.joined(separator: ", ")

    /// The cell columns a store with or without the search counts reads and writes.
    static func cellColumnNames(searches: Bool) -> [String] {
        searches ? cellColumnNames : cellColumnNamesBeforeSearches
    }

    /// The levels this store keeps (a migration may run before a level's tables exist).
    let levels: [RollupLevel]
    /// Whether the cells have the search counts: false for migrations v5 and v6, which run before v12.
    let searches: Bool
    private let connection: SQLiteConnection
    /// By `CellTable.ordinal` (see `RollupUpsert`); nil for a level this store does not keep.
    private var upserts = [Statement?](repeating: nil, count: CellTable.count)
    private var insertKeys: [RollupLevel: Statement] = [:]
    /// Ids of the rollup keys, loaded whole (thousands of rows at most); see `reload`.
    private var keyIds: [RollupLevel: [RollupKey: Int64]] = [:]
    private var bothIds: [RollupKey: RollupKeyIds] = [:]

    init(connection: SQLiteConnection, levels: [RollupLevel] = RollupLevel.allCases, searches: Bool = true) throws {
        self.connection = connection
        self.levels = levels
        self.searches = searches
        try RollupUpsert.registerFunctions(on: connection)
        for level in levels {
            for span in RollupSpan.allCases {
                upserts[CellTable(level: level, span: span).ordinal] = try connection.prepare(
                    RollupUpsert.sql(table: level.table(span), spanColumn: span.column,
                                     columns: Self.cellColumnNames(searches: searches)))
            }
            let columns = level.keyColumns
            insertKeys[level] = try connection.prepare("""
                INSERT INTO \(level.keyTable) (\(columns.joined(separator: ", ")))
                VALUES (\((1...columns.count).map { "?\($0)" }.joined(separator: ", ")))
                """)
        }
        try reload()
    }

    func finalize() {
        for s in upserts.compactMap({ $0 }) { s.finalize() }
        for s in insertKeys.values { s.finalize() }
    }

    /// Re-reads the key ids (after another connection may have written, or a rollback).
    func reload() throws {
        bothIds.removeAll()
        for level in levels {
            keyIds[level] = try Self.ids(level, on: connection)
        }
    }

    /// The keys of `level` by id (model, provider and key are nil at the payer level).
    static func keys(_ level: RollupLevel = .detailed, on connection: SQLiteConnection) throws -> [Int64: RollupKey] {
        let s = try connection.prepare("SELECT id, \(level.keyColumns.joined(separator: ", ")) FROM \(level.keyTable)")
        var keys: [Int64: RollupKey] = [:]
        while try s.step() {
            keys[s.int64(at: 0)] = level == .detailed
                ? RollupKey(user: s.optionalString(at: 1), team: s.optionalString(at: 2), model: s.optionalString(at: 3),
                            provider: s.optionalString(at: 4), plan: s.optionalString(at: 5), keyId: s.optionalString(at: 6))
                : RollupKey(user: s.optionalString(at: 1), team: s.optionalString(at: 2), model: nil, provider: nil,
                            plan: s.optionalString(at: 3), keyId: nil)
        }
        return keys
    }

    /// The ids of the keys of `level`, by key (`keys` turned round).
    static func ids(_ level: RollupLevel, on connection: SQLiteConnection) throws -> [RollupKey: Int64] {
        try keys(level, on: connection).reduce(into: [:]) { $0[$1.value] = $1.key }
    }

    /// The id of `key` (reduced to the level's dimensions) at `level`, inserting it if new.
    /// Within a rolled-back transaction the new ids vanish: the caller must `reload()` after a rollback.
    func id(of key: RollupKey, at level: RollupLevel) throws -> Int64 {
        let key = level.key(key)
        if let id = keyIds[level]?[key] { return id }
        let insert = insertKeys[level]!
        let values = level == .detailed ? [key.user, key.team, key.model, key.provider, key.plan, key.keyId]
            : [key.user, key.team, key.plan]
        for (offset, value) in values.enumerated() { insert.bind(value, at: Int32(offset + 1)) }
        try insert.run()
        let id = sqlite3_last_insert_rowid(connection.handle)
        keyIds[level, default: [:]][key] = id
        return id
    }

    /// The key's ids at both levels (for a store that keeps both), with one lookup once known.
    func ids(of key: RollupKey) throws -> RollupKeyIds {
        if let known = bothIds[key] { return known }
        let ids = RollupKeyIds(detailed: try id(of: key, at: .detailed), payer: try id(of: key, at: .payer))
        bothIds[key] = ids
        return ids
    }

    /// Adds `delta` to the stored cell, or stores it if there is none.
    func merge(_ delta: RollupCell, into address: CellAddress) throws {
        let upsert = upserts[address.table.ordinal]!
        upsert.bind(address.number, at: 1)
        upsert.bind(address.key, at: 2)
        bind(delta, to: upsert, from: 3)
        try upsert.runRebinding()
    }

    /// Histogram encodings of the cell being bound, reused so that encoding allocates nothing.
    private var latencyBytes: [UInt8] = []
    private var ttftBytes: [UInt8] = []

    private func bind(_ cell: RollupCell, to s: Statement, from first: Int32) {
        let cost = cell.cost.storedParts
        let retryCost = cell.retryCost.storedParts
        s.bind(cell.requests, at: first)
        s.bind(cell.refused, at: first + 1)
        s.bind(cell.errors, at: first + 2)
        s.bind(cell.inputTokens, at: first + 3)
        s.bind(cell.cachedInputTokens, at: first + 4)
        s.bind(cell.cacheWriteTokens, at: first + 5)
        s.bind(cell.outputTokens, at: first + 6)
        s.bind(cell.reasoningTokens, at: first + 7)
        s.bind(cost.low, at: first + 8)
        s.bind(cost.high, at: first + 9)
        s.bind(cell.timed, at: first + 10)
        s.bind(cell.latencySum, at: first + 11)
        s.bind(cell.retries, at: first + 12)
        s.bind(retryCost.low, at: first + 13)
        s.bind(retryCost.high, at: first + 14)
        cell.latency.encode(into: &latencyBytes)
        cell.ttft.encode(into: &ttftBytes)
        s.bind(blob: latencyBytes, at: first + 15)
        s.bind(blob: ttftBytes, at: first + 16)
        s.bind(cell.quarters, at: first + 17)
        s.bind(cell.quartersHigh, at: first + 18)
        guard searches else { return }
        s.bind(cell.webSearches, at: first + 19)
        s.bind(cell.fileSearches, at: first + 20)
    }

    /// Reads a cell whose `cellColumnNames(searches:)` start at column `c`.
    static func decodeCell(_ s: Statement, from c: Int32, searches: Bool = true) -> RollupCell {
        var cell = RollupCell()
        cell.requests = s.int(at: c)
        cell.refused = s.int(at: c + 1)
        cell.errors = s.int(at: c + 2)
        cell.inputTokens = s.int(at: c + 3)
        cell.cachedInputTokens = s.int(at: c + 4)
        cell.cacheWriteTokens = s.int(at: c + 5)
        cell.outputTokens = s.int(at: c + 6)
        cell.reasoningTokens = s.int(at: c + 7)
        cell.cost = Int128(storedLow: s.int64(at: c + 8), high: s.int64(at: c + 9))
        cell.timed = s.int(at: c + 10)
        cell.latencySum = s.int64(at: c + 11)
        cell.retries = s.int(at: c + 12)
        cell.retryCost = Int128(storedLow: s.int64(at: c + 13), high: s.int64(at: c + 14))
        s.withBlob(at: c + 15) { cell.latency = SparseHistogram(decoding: $0) }
        s.withBlob(at: c + 16) { cell.ttft = SparseHistogram(decoding: $0) }
        cell.quarters = s.int64(at: c + 17)
        cell.quartersHigh = s.int64(at: c + 18)
        if searches {
            cell.webSearches = s.int(at: c + 19)
            cell.fileSearches = s.int(at: c + 20)
        }
        return cell
    }
}
