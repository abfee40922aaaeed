/// The table of a level and span.
struct CellTable: Hashable {
    var level: RollupLevel
    var span: RollupSpan

    static let count = 4

    /// 0..<`count`, so per-table state lives in arrays (hashing a table per cell was a visible cost).
    var ordinal: Int { (level == .detailed ? 0 : 2) + (span == .hour ? 0 : 1) }
}

/// The writer's recent rollup cells, as stored, so a batch adds to them without reading them
/// back; bounded, least recently used dropped first. It also knows which cells cannot be stored
/// yet: past the highest span number stored when it was reset and the highest it dropped, a
/// cell not in memory does not exist (the writer wrote every cell since), so a new hour's cells
/// cost no lookup either. Valid only while its connection is the only writer and commits: the
/// owner resets it after a rollback or another connection's write.
struct RollupCellCache {
    /// Cells kept (the writer's default): the current hour and day at both levels for thousands
    /// of users with several models and keys each, with room for late rows (a few hundred bytes
    /// each with their histograms).
    static let defaultCapacity = LedgerWriter.Options().rollupCacheCells

    private struct Entry {
        var cell: RollupCell
        var used: UInt64
    }

    let capacity: Int
    private var entries: [CellAddress: Entry] = [:]
    /// Cells stored per batch, oldest batch first (a cell stored again later is also listed
    /// under its later batch; only its latest listing counts), so trimming needs no sort.
    private var stored: [(generation: UInt64, addresses: [CellAddress])] = []
    private var storedHead = 0
    /// Per table (by ordinal): the highest span number that may be stored without being in memory.
    private var storedUpTo = [Int64](repeating: .max, count: CellTable.count)
    private var generation: UInt64 = 0

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    var count: Int { entries.count }

    /// Forgets every cell; `stored` is each table's highest span number in the ledger.
    mutating func reset(storedUpTo stored: [CellTable: Int64]) {
        entries.removeAll(keepingCapacity: true)
        self.stored.removeAll()
        storedHead = 0
        storedUpTo = [Int64](repeating: .max, count: CellTable.count)
        for (table, number) in stored { storedUpTo[table.ordinal] = number }
    }

    func cell(at address: CellAddress) -> RollupCell? { entries[address]?.cell }

    /// Whether a cell missing from memory may be in the ledger (else it is certainly not).
    func mayBeStored(_ address: CellAddress) -> Bool {
        address.number <= storedUpTo[address.table.ordinal]
    }

    /// Records the cell as now stored.
    mutating func store(_ cell: RollupCell, at address: CellAddress) {
        entries[address] = Entry(cell: cell, used: generation)
        if stored.last?.generation != generation { stored.append((generation, [])) }
        stored[stored.count - 1].addresses.append(address)
    }

    /// Ends a batch: past the capacity, drops the least recently stored cells, oldest batches
    /// first, down to 3/4 of it.
    mutating func trim() {
        generation += 1
        guard entries.count > capacity else { return }
        let keep = capacity * 3 / 4
        while entries.count > keep && storedHead < stored.count {
            let (batch, addresses) = stored[storedHead]
            stored[storedHead].addresses = []
            storedHead += 1
            for address in addresses {
                guard let index = entries.index(forKey: address), entries.values[index].used == batch else { continue }
                entries.remove(at: index)
                let table = address.table.ordinal
                storedUpTo[table] = max(storedUpTo[table], address.number)
            }
        }
        if storedHead > stored.count / 2 {
            stored.removeFirst(storedHead)
            storedHead = 0
        }
    }
}
