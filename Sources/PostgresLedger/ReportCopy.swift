import Foundation
import Ledger

/// A span of a PostgreSQL ledger copied into a temporary SQLite ledger, where SQLite's report
/// engine answers queries over it (see `PostgresLedgerReader.report`). The file is deleted by
/// `close()` or when the copy goes away.
final class ReportCopy {
    /// The calls copied: every call that started in `[since, until)`.
    let since: Int64
    let until: Int64
    /// The file (for `RollupTransfer.cells`).
    let path: String
    private let directory: URL
    private let reader: LedgerReader

    /// What a pruned ledger keeps before its mark: the cells of the pruned calls.
    struct Pruned {
        var mark: Int64
        var cells: [RollupTransfer.Cell]
    }

    /// Copies the calls `visit` yields (those of `[since, until)`, and with `pruned` the retry
    /// window's calls before its mark) with SQLite's `LedgerWriter`, which computes retry flags
    /// and rollups with the same code as for a SQLite ledger; then, with `pruned`, replaces
    /// everything before the mark with its cells, as pruning a SQLite ledger would.
    init(since: Int64, until: Int64, pruned: Pruned? = nil,
         visit: (_ body: (LedgerEntry) throws -> Void) throws -> Void) throws {
        self.since = since
        self.until = until
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokenctl-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("period.sqlite").path
        self.path = path
        do {
            // One transaction per 16k calls, rollups once at the end: the copy is written once and read a few times.
            let writer = try LedgerWriter(path: path, options: LedgerWriter.Options(maxBatch: 16_384, rollupFlushRows: 1 << 30,
                                                                                      rollupFlushInterval: .seconds(3_600)))
            let failures = FirstFailure()
            do {
                try visit { entry in
                    writer.append(entry) { result in
                        if case .failure(let error) = result { failures.record(error) }
                    }
                }
            } catch {
                writer.close()
                throw error
            }
            writer.close()
            if let error = failures.error { throw error }
            if let pruned { try RollupTransfer.adopt(pruned.cells, prunedBefore: pruned.mark, inLedgerAt: path) }
            reader = try LedgerReader(path: path)
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    deinit { close() }

    /// Whether the copy holds every call `query` needs: its period and the retry window before it.
    func answers(_ query: ReportQuery) -> Bool {
        Self.start(of: query) >= since && query.until <= until
    }

    /// The first start a report over `query` needs: a call is a retry of one up to
    /// `ReportQuery.retryWindowMicros` earlier.
    static func start(of query: ReportQuery) -> Int64 {
        let window = ReportQuery.retryWindowMicros
        return query.since < Int64.min + window ? Int64.min : query.since - window
    }

    func report(_ query: ReportQuery) throws -> Report {
        try reader.report(query)
    }

    func close() {
        reader.close()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// The first failure of the copy's rows (callbacks run on the copy writer's thread).
private final class FirstFailure: @unchecked Sendable {
    private let lock = NSLock()
    private var first: LedgerError?

    func record(_ error: LedgerError) {
        lock.withLock { if first == nil { first = error } }
    }

    var error: LedgerError? { lock.withLock { first } }
}
