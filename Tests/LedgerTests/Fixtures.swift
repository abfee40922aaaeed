import Foundation
import Metering
import Testing
@testable import Ledger

/// Records an issue unless `result` is the failure a closed writer gives.
func expectClosed(_ result: Result<Void, LedgerError>?, sourceLocation: SourceLocation = #_sourceLocation) {
    guard case .failure(.closed) = result else {
        Issue.record("expected .closed, got \(String(describing: result))", sourceLocation: sourceLocation)
        return
    }
}

extension CallRow {
    /// The columns before v8 (no 1-hour cache writes), in `bind`'s order: 1 to 36.
    static let v7Columns = Array(columns.prefix(36))
    private static let v7Values = (1...36).map { "?\($0)" }.joined(separator: ", ")

    /// The INSERT of a ledger before v5 (no retry column), for the tests that migrate one
    /// (`bind`'s later parameters go unused).
    static let v4InsertSQL = "INSERT INTO calls (\(v7Columns.joined(separator: ", "))) VALUES (\(v7Values))"

    /// The INSERT of a v5 to v7 ledger: the retry flag at `retryParameter`.
    static let v7InsertSQL =
        "INSERT INTO calls (\(v7Columns.joined(separator: ", ")), retry) VALUES (\(v7Values), ?\(retryParameter))"
}

extension LedgerEntry {
    /// The call as a ledger before v9 held it: without search counts (v9 and v11 add them).
    var withoutSearches: LedgerEntry {
        var entry = self
        entry.usage.webSearches = 0
        entry.usage.fileSearches = 0
        return entry
    }
}
