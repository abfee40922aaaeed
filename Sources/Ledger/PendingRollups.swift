import Foundation

/// Rollup deltas of the calls the writer committed but has not yet added to the cells: the
/// ledger's tail, every call with a rowid above `meta.rollups_through`.
///
/// Adding a batch's calls to four cells each (hour and day, detailed and payer level) in every
/// transaction costs more than inserting the calls; deferring them lets each cell be written once
/// per flush instead of once per batch. Reports stay exact: they add the tail's calls to the cells
/// they read (`ReportFolding`). A flush runs in a writer transaction (with or without calls),
/// writes every pending cell and moves `rollups_through` to the last call, so cells and the mark
/// always commit or roll back together. Nothing here needs to survive: whoever writes next
/// rebuilds the pending deltas from the tail (`reload`).
///
/// Retries: a call that becomes a retry while in the tail is marked in its pending delta; one
/// already in the cells gets its retry added to the stored cells at once.
final class PendingRollups {
    /// A detailed-level hour cell; the day and payer-level cells are derived from it at a flush.
    private struct HourCell: Hashable {
        var hour: Int64
        var keys: RollupKeyIds
    }

    static let markName = "rollups_through"

    private let connection: SQLiteConnection
    private let store: RollupStore
    private var cells: [HourCell: RollupCellBuilder] = [:]
    /// Calls in the tail, and since when the oldest of them waits.
    private(set) var rows = 0
    private(set) var waitingSince: ContinuousClock.Instant?
    /// Rowids up to this one are in the cells.
    private(set) var through: Int64 = 0
    private let readTail: Statement
    private let setMark: Statement

    init(connection: SQLiteConnection, store: RollupStore) throws {
        self.connection = connection
        self.store = store
        readTail = try connection.prepare("SELECT \(RollupFacts.callColumns()) FROM calls WHERE rowid > ?1")
        // The search counts' mark (`SearchRollups`; absent before v12) moves with it: `flush`
        // recounts first if a writer of an older build rolled calls up meanwhile.
        setMark = try connection.prepare(
            "UPDATE meta SET value = ?1 WHERE name IN ('\(Self.markName)', '\(SearchRollups.markName)')")
    }

    func finalize() {
        readTail.finalize()
        setMark.finalize()
    }

    /// The mark of a ledger (0 if unset: every call is in the tail, which is always correct).
    static func mark(on connection: SQLiteConnection) throws -> Int64 {
        try connection.scalarInt("SELECT value FROM meta WHERE name = '\(markName)'") ?? 0
    }

    /// Rebuilds the pending deltas from the ledger's tail (at open, after a rollback, or after
    /// another connection wrote). Call after `store.reload()`, inside a transaction.
    func reload() throws {
        cells.removeAll()
        through = try Self.mark(on: connection)
        rows = 0
        waitingSince = nil
        readTail.bind(through, at: 1)
        defer { readTail.reset() }
        while try readTail.step() {
            let (key, facts) = RollupFacts.call(readTail)
            add(facts, keys: try store.ids(of: key))
        }
    }

    /// Adds a call just inserted.
    func add(_ facts: RollupFacts, keys: RollupKeyIds) {
        let span = RollupSpan.hour
        cells[HourCell(hour: span.number(of: facts.startedAt), keys: keys), default: RollupCellBuilder()]
            .add(facts, quarter: span.quarter(of: facts.startedAt))
        rows += 1
        if waitingSince == nil { waitingSince = ContinuousClock.now }
    }

    /// Counts an earlier call as a retry: in its pending delta if it is in the tail, else in the
    /// stored cells right away.
    func markRetry(_ call: RetryTracker.Call) throws {
        if call.rowid > through {
            cells[HourCell(hour: RollupSpan.hour.number(of: call.startedAt), keys: call.keys), default: RollupCellBuilder()]
                .markRetry(cost: call.cost)
            return
        }
        var delta = RollupCell()
        delta.retries = 1
        delta.retryCost = Int128(call.cost)
        for level in RollupLevel.allCases {
            for span in RollupSpan.allCases {
                try store.merge(delta, into: CellAddress(level: level, span: span, number: span.number(of: call.startedAt),
                                                         key: call.keys[level]))
            }
        }
    }

    /// Adds every pending delta to the cells and moves the mark past the tail. Inside the
    /// writer's transaction; after a failure the caller rolls back and reloads.
    func flush() throws {
        // Before the guard: a prune flushes an empty tail, then deletes calls whose searches an
        // older build may have left out of the cells.
        try SearchRollups.recountIfLagging(on: connection)
        guard rows > 0 || !cells.isEmpty else { return }
        // Each table's cells in its key order (span number, then key id): new cells then extend
        // the B-tree at its end instead of splitting pages all over it (random order cost about
        // twice as much per cell). Hour cells sorted by hour give the derived cells of one hour or
        // day together, so each derived table sums one span number at a time: its sums stay as
        // small as one day's keys (whole-tail dictionaries grew, rehashed and page-faulted their
        // way to a cell per call when the tail spread over a month).
        var detailedDays = SpanSums(level: .detailed, span: .day)
        var payerHours = SpanSums(level: .payer, span: .hour), payerDays = SpanSums(level: .payer, span: .day)
        // Sorting the keys alone: moving whole builders while sorting copied more than it saved.
        for hourCell in cells.keys.sorted(by: { ($0.hour, $0.keys.detailed) < ($1.hour, $1.keys.detailed) }) {
            let cell = cells[hourCell]!.built()
            let day = floorDiv(hourCell.hour, 24)
            let inDay = Self.shifted(cell, hour: hourCell.hour)
            try store.merge(cell, into: CellAddress(level: .detailed, span: .hour, number: hourCell.hour, key: hourCell.keys.detailed))
            try detailedDays.add(inDay, number: day, key: hourCell.keys.detailed, writingTo: store)
            try payerHours.add(cell, number: hourCell.hour, key: hourCell.keys.payer, writingTo: store)
            try payerDays.add(inDay, number: day, key: hourCell.keys.payer, writingTo: store)
        }
        try detailedDays.write(to: store)
        try payerHours.write(to: store)
        try payerDays.write(to: store)
        let last = try connection.scalarInt("SELECT MAX(rowid) FROM calls") ?? 0
        setMark.bind(last, at: 1)
        try setMark.run()
        through = last
        cells.removeAll(keepingCapacity: true)
        rows = 0
        waitingSince = nil
    }

    /// The sums of one table's cells for one span number at a time, by key id, written in key
    /// order once the number moves on.
    private struct SpanSums {
        let level: RollupLevel
        let span: RollupSpan
        var number: Int64 = .min
        var cells: [Int64: RollupCell] = [:]

        mutating func add(_ cell: RollupCell, number: Int64, key: Int64, writingTo store: RollupStore) throws {
            if number != self.number {
                try write(to: store)
                self.number = number
            }
            cells[key, default: RollupCell()].absorb(cell)
        }

        mutating func write(to store: RollupStore) throws {
            // The keys alone, as for the hour cells: sorting (key, cell) pairs moved whole cells.
            for key in cells.keys.sorted() {
                try store.merge(cells[key]!, into: CellAddress(level: level, span: span, number: number, key: key))
            }
            cells.removeAll(keepingCapacity: true)
        }
    }

    /// An hour cell's quarter-hour presence (bits 0..<4) placed at its hour within the day.
    private static func shifted(_ cell: RollupCell, hour: Int64) -> RollupCell {
        var cell = cell
        let first = 4 * (hour - floorDiv(hour, 24) * 24)
        let bits = cell.quarters
        (cell.quarters, cell.quartersHigh) = first < 48 ? (bits << first, 0) : (0, bits << (first - 48))
        return cell
    }
}
