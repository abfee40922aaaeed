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
        let markersLeft = InFlightJournal.hasMarkersLeft(databasePath: sqlitePath)
        guard markersLeft || LedgerJournal.anyLeftBehind(beside: sqlitePath) else { return }
        // Its start replays the rows first, as at a start of `serve`: a marker whose row was
        // only in a journal is then known.
        let writer = try LedgerWriter(path: sqlitePath)
        defer { writer.close() }
        try writer.replayed.requireWhole(beside: sqlitePath)
        if markersLeft { _ = InFlightJournal.recover(databasePath: sqlitePath, into: writer) }
    }
}
