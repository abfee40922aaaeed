import Foundation
import Ledger
import Metering
import PostgresNIO

/// Copies a SQLite ledger into a PostgreSQL one (`tokenctl ledger migrate`): every call through
/// the PostgreSQL writer (batched, one transaction per batch), then the API keys, then compares
/// row counts and per-column sums of both sides, and checks every key arrived.
///
/// Idempotent: calls already present (same id and start) and keys already present (same id or
/// secret) are skipped, so an interrupted copy is finished by running it again. The comparison
/// expects the target to hold the source's calls and nothing else.
public enum LedgerMigration {
    public struct Outcome: Sendable {
        public var source: LedgerTotals
        public var target: LedgerTotals
        /// Calls written now, and those the target already had.
        public var copied: Int
        public var alreadyPresent: Int
        public var sourceKeys: Int
        /// Source keys found in the target (same id and secret hash); keys made there directly do not count.
        public var targetKeys: Int

        public var matches: Bool { source.figures.map(\.value) == target.figures.map(\.value) && sourceKeys == targetKeys }
    }

    /// Rows in flight before the copy waits for the writer (bounds memory on big ledgers).
    static let window = 50_000

    public static func run(from sqlitePath: String, to location: PostgresLocation,
                           progress: (Int) -> Void = { _ in }) throws -> Outcome {
        // The rows a stopped gateway left only in its journal beside the file, as `serve` would
        // record them at its next start: else they would never reach PostgreSQL.
        if FileManager.default.fileExists(atPath: sqlitePath) {
            try LedgerWriter.recordJournalsLeftBehind(at: sqlitePath)
        }
        let source = try LedgerReader(path: sqlitePath)
        defer { source.close() }
        // Calls before a prune live only in the rollups, which are not copied: the counts would
        // match and PostgreSQL's reports of those months would still be empty.
        let pruned = try source.prunedBefore()
        guard pruned == 0 else {
            let day = Date(timeIntervalSince1970: Double(pruned) / 1e6).ISO8601Format(.iso8601.year().month().day())
            throw LedgerError.invalidRow("\(sqlitePath) was pruned (raw calls before \(day) are gone, only its rollups hold them); migrate copies raw calls, so those months would be missing from PostgreSQL's reports. Migrate a copy taken before the prune.")
        }
        let sourceTotals = try source.totals()
        // Partitions for every month of the source first: rows of a month without one would
        // land in the default partition for good.
        let session = try PostgresSession(location)
        defer { session.close() }
        try PostgresSchema.prepare(session)
        if let first = sourceTotals.firstStart, let last = sourceTotals.lastStart {
            try PostgresSchema.ensurePartitions(session, from: UTCMonth(containing: first), through: UTCMonth(containing: last))
        }
        let writer = try PostgresLedgerWriter(location: location, options: LedgerWriter.Options(maxBatch: 4_096))
        let counts = InsertTally()
        var read = 0
        do {
            try source.forEachEntry(since: .min, until: .max) { entry in
                writer.append(entry) { result in counts.record(result) }
                read += 1
                if read % window == 0 {
                    writer.flush()
                    if let error = counts.failure { throw error }
                    progress(read)
                }
            }
        } catch {
            writer.close()
            throw error
        }
        writer.close()
        if let error = counts.failure { throw error }
        progress(read)

        let sourceKeyStore = try KeyStore(path: sqlitePath)
        defer { sourceKeyStore.close() }
        let targetKeyStore = try PostgresKeyStore(location: location)
        defer { targetKeyStore.close() }
        let keys = try sourceKeyStore.list()
        for key in keys {
            do {
                try targetKeyStore.insert(key)
            } catch let error as LedgerError where error.isConstraintViolation {
                continue  // copied by an earlier run
            }
        }
        let targetKeys = Set(try targetKeyStore.list().map { [$0.id, $0.secretHash] })
        let target = try PostgresLedgerReader(location: location)
        defer { target.close() }
        return Outcome(source: sourceTotals, target: try target.totals(), copied: counts.committed,
                       alreadyPresent: counts.present, sourceKeys: keys.count,
                       targetKeys: keys.filter { targetKeys.contains([$0.id, $0.secretHash]) }.count)
    }
}

extension PostgresLedgerReader {
    /// Count and sums of every call (sums as NUMERIC, exact).
    public func totals() throws -> LedgerTotals {
        let sums = LedgerTotals.summedColumns.map { "COALESCE(SUM(\($0)), 0)::text" }.joined(separator: ", ")
        return try withSession { session in
            guard let row = try session.query("""
                SELECT COUNT(*), MIN(started_at), MAX(started_at), \(unescaped: sums) FROM calls
                """, context: "sum calls").first else { throw LedgerError.invalidRow("no totals row") }
            let r = row.makeRandomAccess()
            func sum(_ column: Int) throws -> Int128 {
                let text: String = try r.value(column)
                guard let value = Int128(text) else { throw LedgerError.invalidRow("sum '\(text)' is not an integer") }
                return value
            }
            return LedgerTotals(rows: Int(try r.value(0, as: Int64.self)), firstStart: try r.value(1), lastStart: try r.value(2),
                                inputTokens: try sum(3), cachedInputTokens: try sum(4), cacheWriteTokens: try sum(5),
                                outputTokens: try sum(6), reasoningTokens: try sum(7),
                                cost: Money.Total(picodollars: try sum(8)), latencyMicros: try sum(9),
                                cacheWrite1hTokens: try sum(10), webSearches: try sum(11),
                                audioInputTokens: try sum(12), audioOutputTokens: try sum(13),
                                fileSearches: try sum(14))
        }
    }
}
