import Foundation
import Metering

/// Deletes old raw call rows of a SQLite ledger whose figures the rollup cells already hold, so
/// a ledger can keep years of reports without years of rows.
///
/// What stays exact: reports over whole UTC hours (hence whole days in UTC and in zones whose
/// offset is a whole number of hours) give the same figures after pruning, from the cells. What
/// is lost before the date: raw rows, so `export`, `policy simulate`, entry look-ups and report
/// edges that are not whole hours (or zones with half-hour offsets) no longer see those calls.
public enum LedgerPrune {
    /// The meta row holding the earliest moment raw rows are kept from (0: never pruned).
    static let markName = "pruned_before"

    /// Why a prune was not attempted.
    public struct Refusal: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) { self.description = description }
    }

    public struct Outcome: Sendable, Hashable {
        /// Raw rows deleted.
        public var deleted: Int
        /// Calls the cells received from the tail first (committed but not yet rolled up).
        public var rolledUp: Int

        public init(deleted: Int, rolledUp: Int) {
            self.deleted = deleted
            self.rolledUp = rolledUp
        }
    }

    /// Rolls up the ledger's tail, then deletes the calls that started before `before` (a UTC
    /// midnight, Unix µs), in one transaction. `before` must be at most the last day of the
    /// previous UTC month, so budgets of the current month (in any zone), which are rebuilt from
    /// raw rows at start-up, keep their rows. Safe while a server writes (it reloads its key ids
    /// and tail when another connection commits).
    public static func prune(path: String, before: Int64, now: Int64 = UnixTime.nowMicros()) throws -> Outcome {
        try checkDate(before, now: now)
        guard FileManager.default.fileExists(atPath: path) else { throw Refusal(description: "no ledger at \(path)") }
        // A stopped gateway's rows only in its journal go in first: after the prune they would
        // be taken for pruned ones and never counted.
        try LedgerWriter.recordJournalsLeftBehind(at: path)
        let connection = try SQLiteConnection(path: path)
        defer { connection.close() }
        try connection.configureForLedger()
        try Schema.migrate(connection)
        try connection.execute("BEGIN IMMEDIATE")
        do {
            let rollups = try RollupStore(connection: connection)
            let tail = try PendingRollups(connection: connection, store: rollups)
            defer { rollups.finalize(); tail.finalize() }
            try tail.reload()
            let rolledUp = tail.rows
            try tail.flush()
            // The last row stays, whatever its date: SQLite gives a new row the largest rowid
            // plus one, which must stay above the mark or the new call would count as rolled up.
            let delete = try connection.prepare("DELETE FROM calls WHERE started_at < ?1 AND rowid < ?2")
            delete.bind(before, at: 1)
            delete.bind(tail.through, at: 2)
            try delete.run()
            let deleted = connection.changes
            delete.finalize()
            let mark = try connection.prepare("""
                INSERT INTO meta (name, value) VALUES ('\(markName)', ?1)
                ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)
                """)
            mark.bind(before, at: 1)
            try mark.run()
            mark.finalize()
            try connection.execute("COMMIT")
            return Outcome(deleted: Int(deleted), rolledUp: rolledUp)
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }

    /// Refuses a prune date that is not a UTC midnight on or before the last day of the
    /// previous month, and the Sunday before the current ISO week, in every time zone (the rule
    /// of both engines).
    public static func checkDate(_ before: Int64, now: Int64 = UnixTime.nowMicros()) throws {
        guard before % UnixTime.microsPerDay == 0 else {
            throw Refusal(description: "the prune date must be a UTC midnight")
        }
        // A zone behind UTC (to UTC-12) is still in the previous day for up to 12 hours: its
        // month and week are those of UTC 14 hours ago (a whole-hour margin past any zone's).
        let now = now - Self.behindUTCMargin
        let today = Day(unixSeconds: now / UnixTime.microsPerSecond).description
        let monthStart = Day(String(today.prefix(8)) + "01")!.unixSeconds * UnixTime.microsPerSecond
        // The current week too: it can start up to six days before the month (ISO weeks start on
        // Monday; a day's margin covers zones ahead of UTC), and weekly budgets are rebuilt from
        // raw rows as well.
        let days = now / UnixTime.microsPerDay
        let weekStart = (days - (days + 3) % 7) * UnixTime.microsPerDay  // 1970-01-01 was a Thursday
        let latest = Day(unixSeconds: (min(monthStart, weekStart) - UnixTime.microsPerDay) / UnixTime.microsPerSecond)
        guard before <= monthStart - UnixTime.microsPerDay else {
            throw Refusal(description: """
                the prune date must be on or before the last day of the previous UTC month (this month's budgets are \
                rebuilt from raw rows, and a policy time zone ahead of UTC starts the month up to a day earlier; \
                one behind UTC is still in the previous month for the first 14 hours of a UTC month); the latest \
                allowed today is \(latest)
                """)
        }
        guard before <= weekStart - UnixTime.microsPerDay else {
            throw Refusal(description: """
                the prune date must be on or before the Sunday before this ISO week (its budgets are rebuilt from raw \
                rows); the latest allowed today is \(latest)
                """)
        }
    }

    /// How far behind UTC the date `checkDate` reads the current month and week at is taken.
    static let behindUTCMargin: Int64 = 14 * 3_600 * UnixTime.microsPerSecond

    /// Where raw rows start (0 if the ledger was never pruned).
    static func prunedBefore(on connection: SQLiteConnection) throws -> Int64 {
        try connection.scalarInt("SELECT value FROM meta WHERE name = '\(markName)'") ?? 0
    }
}
