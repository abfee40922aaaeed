import CSQLite

/// Reads and merges rollup cells and key ids on one connection, inside the caller's transaction
/// (the writer's, or a migration's), so rollups always commit or roll back with their calls.
final class RollupStore {
    static let cellColumns = """
        requests, refused, errors, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens,
        reasoning_tokens, cost_pd, cost_pd_high, timed, latency_sum_us, retries, retry_cost_pd,
        retry_cost_pd_high, latency_hist, ttft_hist, quarters, quarters_high
        """
    static let cellColumnCount: Int32 = 19

    private let connection: SQLiteConnection
    private var selects: [RollupSpan: Statement] = [:]
    private var upserts: [RollupSpan: Statement] = [:]
    private let insertKey: Statement
    /// Ids of the rollup keys, loaded whole (thousands of rows at most); see `reloadKeys`.
    private var keyIds: [RollupKey: Int64] = [:]

    init(connection: SQLiteConnection) throws {
        self.connection = connection
        for span in RollupSpan.allCases {
            selects[span] = try connection.prepare(
                "SELECT \(Self.cellColumns) FROM \(span.table) WHERE \(span.column) = ?1 AND key = ?2")
            upserts[span] = try connection.prepare("""
                INSERT OR REPLACE INTO \(span.table) (\(span.column), key, \(Self.cellColumns))
                VALUES (?1, ?2, \((3...21).map { "?\($0)" }.joined(separator: ", ")))
                """)
        }
        insertKey = try connection.prepare(
            "INSERT INTO rollup_keys (user, team, model, provider, plan, key_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        try reloadKeys()
    }

    func finalize() {
        for s in selects.values { s.finalize() }
        for s in upserts.values { s.finalize() }
        insertKey.finalize()
    }

    /// Re-reads the key ids (after another connection may have added some, or a rollback).
    func reloadKeys() throws {
        keyIds = try Self.keys(on: connection).reduce(into: [:]) { $0[$1.value] = $1.key }
    }

    static func keys(on connection: SQLiteConnection) throws -> [Int64: RollupKey] {
        let s = try connection.prepare("SELECT id, user, team, model, provider, plan, key_id FROM rollup_keys")
        var keys: [Int64: RollupKey] = [:]
        while try s.step() {
            keys[s.int64(at: 0)] = RollupKey(user: s.optionalString(at: 1), team: s.optionalString(at: 2),
                                             model: s.optionalString(at: 3), provider: s.optionalString(at: 4),
                                             plan: s.optionalString(at: 5), keyId: s.optionalString(at: 6))
        }
        return keys
    }

    /// The id of `key`, inserting it if new. Within a rolled-back transaction the new ids vanish:
    /// the caller must `reloadKeys()` after a rollback.
    func id(of key: RollupKey) throws -> Int64 {
        if let id = keyIds[key] { return id }
        insertKey.bind(key.user, at: 1)
        insertKey.bind(key.team, at: 2)
        insertKey.bind(key.model, at: 3)
        insertKey.bind(key.provider, at: 4)
        insertKey.bind(key.plan, at: 5)
        insertKey.bind(key.keyId, at: 6)
        try insertKey.run()
        let id = sqlite3_last_insert_rowid(connection.handle)
        keyIds[key] = id
        return id
    }

    /// Adds `delta` to the stored cell (or stores it).
    func merge(_ delta: RollupCell, into address: CellAddress) throws {
        let select = selects[address.span]!
        select.bind(address.number, at: 1)
        select.bind(address.key, at: 2)
        var cell = delta
        if try select.step() {
            var stored = Self.decodeCell(select, from: 0)
            stored.absorb(delta)
            cell = stored
        }
        select.reset()
        let upsert = upserts[address.span]!
        upsert.bind(address.number, at: 1)
        upsert.bind(address.key, at: 2)
        Self.bind(cell, to: upsert, from: 3)
        try upsert.run()
    }

    static func bind(_ cell: RollupCell, to s: Statement, from first: Int32) {
        let cost = cell.cost.storedParts
        let retryCost = cell.retryCost.storedParts
        let ints: [Int64] = [Int64(cell.requests), Int64(cell.refused), Int64(cell.errors), Int64(cell.inputTokens),
                             Int64(cell.cachedInputTokens), Int64(cell.cacheWriteTokens), Int64(cell.outputTokens),
                             Int64(cell.reasoningTokens), cost.low, cost.high, Int64(cell.timed), cell.latencySum,
                             Int64(cell.retries), retryCost.low, retryCost.high]
        for (offset, value) in ints.enumerated() { s.bind(value, at: first + Int32(offset)) }
        s.bind(blob: cell.latency.encoded(), at: first + 15)
        s.bind(blob: cell.ttft.encoded(), at: first + 16)
        s.bind(cell.quarters, at: first + 17)
        s.bind(cell.quartersHigh, at: first + 18)
    }

    /// Reads a cell whose `cellColumns` start at column `first`.
    static func decodeCell(_ s: Statement, from c: Int32) -> RollupCell {
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
        return cell
    }
}
