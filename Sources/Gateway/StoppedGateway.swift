import Foundation
import Ledger

/// What gateways stopped without closing a SQLite ledger left beside it: the rows only in their
/// ledger journals, and their in-flight markers (calls without a row, or with a kept final row),
/// recorded as the next start of `serve` records them. For the tools that rewrite or copy the
/// ledger before any start has (`ledger prune`, `ledger migrate`): after a prune a marker's row
/// would be gone, and the call recorded again, as `interrupted`.
public enum StoppedGateway {
    /// Records what stopped gateways left beside `sqlitePath`; throws if a journal's rows could
    /// not all go in (`LedgerWriter.recordJournalsLeftBehind`). Gateways still running are left
    /// alone (their locks are held).
    public static func recordWhatTheyLeft(sqlitePath: String) throws {
        guard FileManager.default.fileExists(atPath: sqlitePath) else { return }
        // Rows first, as at a start: a marker whose row is in the journal is then known.
        try LedgerWriter.recordJournalsLeftBehind(at: sqlitePath)
        guard InFlightJournal.hasMarkersLeft(databasePath: sqlitePath) else { return }
        let writer = try LedgerWriter(path: sqlitePath)
        _ = InFlightJournal.recover(databasePath: sqlitePath, into: writer)
        writer.close()
    }
}
