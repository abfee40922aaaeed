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
    /// The INSERT of a ledger before v5 (no retry column), for the tests that migrate one.
    static let v4InsertSQL = "INSERT INTO calls (\(selectList)) VALUES (" +
        columns.indices.map { "?\($0 + 1)" }.joined(separator: ", ") + ")"
}
