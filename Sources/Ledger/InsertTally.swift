import Foundation

/// Counts the callbacks of rows copied into a ledger that may hold some of them already (a
/// journal's replay, a migration): committed, refused as present (a duplicate id), failed.
/// Callbacks run on the writer's thread; read the counts after its `flush`.
public final class InsertTally: @unchecked Sendable {
    private let lock = NSLock()
    private var committedRows = 0
    private var presentRows = 0
    private var failedRows = 0
    private var firstFailure: LedgerError?

    public init() {}

    public func record(_ result: Result<Void, LedgerError>) {
        lock.lock()
        defer { lock.unlock() }
        switch result {
        case .success: committedRows += 1
        case .failure(let error) where error.isConstraintViolation: presentRows += 1
        case .failure(let error):
            failedRows += 1
            if firstFailure == nil { firstFailure = error }
        }
    }

    public var committed: Int { lock.withLock { committedRows } }
    public var present: Int { lock.withLock { presentRows } }
    public var failed: Int { lock.withLock { failedRows } }
    public var failure: LedgerError? { lock.withLock { firstFailure } }
}
