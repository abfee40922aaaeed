/// A sink that records nothing and answers every append at once: the "ledger off" arm of the
/// benchmark rig (`serve --no-ledger`), which measures what recording costs. Never a default:
/// with it no call is accounted, and budgets restart from the ledger's last state.
public final class DiscardingLedgerSink: LedgerSink {
    public init() {}

    public func append(_ entry: LedgerEntry, onCommit: @escaping LedgerWriter.Completion) {
        onCommit(.success(()))
    }

    public var backlog: Int { 0 }
    public func flush() {}
    public func flush(timeout: Duration) -> Bool { true }
    public func close() {}
}
