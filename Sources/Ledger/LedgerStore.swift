import Foundation
import Metering

/// Where the gateway records calls: SQLite's `LedgerWriter` (the default, one node) or the
/// PostgreSQL writer (several replicas, one ledger). Both are single batched writers with group
/// commit: `onCommit` runs only after the row is recorded (invariant 1): committed, or with
/// `stage` on SQLite written to the ledger's journal. It runs in append order, on the thread
/// that recorded it (the writer's, or the caller's with `stage`); it must be quick and must not
/// call `flush`/`close`.
public protocol LedgerSink: AnyObject, Sendable {
    func append(_ entry: LedgerEntry, onCommit: @escaping LedgerWriter.Completion)
    /// Like `append`, but the caller may record on its own thread: true asks it to call
    /// `recordStaged()` soon (once for all the rows it stages meanwhile). A sink that cannot
    /// record on the caller's thread appends and returns false.
    func stage(_ entry: LedgerEntry, onCommit: @escaping LedgerWriter.Completion) -> Bool
    /// Records staged rows on the calling thread (SQLite: in its journal); never waits for a
    /// commit or another process.
    func recordStaged()
    /// Rows accepted and not yet settled (committed or failed).
    var backlog: Int { get }
    /// Returns once every row accepted before the call has settled.
    func flush()
    /// `flush`, giving up after `timeout` (false then): for a reader that wants the rows
    /// recorded so far (SQLite commits journaled rows a little after their answers) but must not
    /// hang while commits fail.
    func flush(timeout: Duration) -> Bool
    /// Settles what is queued (retrying failed commits a bounded number of times) and stops.
    func close()
}

extension LedgerSink {
    public func stage(_ entry: LedgerEntry, onCommit: @escaping LedgerWriter.Completion) -> Bool {
        append(entry, onCommit: onCommit)
        return false
    }

    public func recordStaged() {}
}

/// What reads the ledger: reports, exports, the quota rebuild at start-up, the admin API.
/// Implementations serialise their own connection and are safe to share between threads.
public protocol LedgerSource: AnyObject, Sendable {
    /// Calls that started in `[since, until)`, oldest first (ties by id).
    func forEachEntry(since: Int64, until: Int64, _ body: (LedgerEntry) throws -> Void) throws
    func entry(requestId: String) throws -> LedgerEntry?
    func entry(id: String) throws -> LedgerEntry?
    func count() throws -> Int
    /// The report engine's answer for `query` (identical on every backend).
    func report(_ query: ReportQuery) throws -> Report
    /// Spend and tokens per (user, team) of calls that started at or after `since`.
    func spend(since: Int64) throws -> [PayerSpend]
    func spendPerMinute(since: Int64) throws -> [(minute: Int64, cost: Money.Total)]
    func activityPerMinute(since: Int64, until: Int64) throws -> [MinuteActivity]
    func close()
}

extension LedgerSource {
    public func entries(since: Int64, until: Int64) throws -> [LedgerEntry] {
        var entries: [LedgerEntry] = []
        try forEachEntry(since: since, until: until) { entries.append($0) }
        return entries
    }
}

/// Client API keys (stored hashed), kept beside the ledger so every replica sees the same keys.
public protocol APIKeyStore: AnyObject, Sendable {
    func insert(_ key: APIKeyRecord) throws
    /// The keys `query` asks for, oldest first.
    func keys(_ query: KeyQuery) throws -> [APIKeyRecord]
    /// The key with this id, revoked or not; nil if none (one indexed read).
    func key(id: String) throws -> APIKeyRecord?
    func revoke(id: String, at time: Int64) throws -> Bool
    /// Changes whenever a key is added or revoked (the directory reloads when it does).
    func changeStamp() throws -> Int64
    func close()
}

extension APIKeyStore {
    /// Every key, oldest first.
    public func list() throws -> [APIKeyRecord] { try keys(KeyQuery()) }

    /// Keys that may authenticate now.
    public func activeKeys() throws -> [APIKeyRecord] { try keys(KeyQuery(revoked: false)) }
}

extension LedgerWriter: LedgerSink {}
extension LedgerReader: LedgerSource {}
extension KeyStore: APIKeyStore {}
