import Metering

/// Calls that started in one minute: the health view's "calls and errors over the last hour".
public struct MinuteActivity: Sendable, Hashable {
    /// Unix microseconds of the minute's start (UTC).
    public var minute: Int64
    public var requests: Int
    public var refused: Int
    /// Calls whose outcome `isError` (provider or transit failures).
    public var errors: Int
    /// Non-refused calls and the sum of their latencies (µs), for a per-minute mean.
    public var timedRequests: Int
    public var latencySumMicros: Int64

    public init(minute: Int64, requests: Int, refused: Int, errors: Int, timedRequests: Int, latencySumMicros: Int64) {
        self.minute = minute
        self.requests = requests
        self.refused = refused
        self.errors = errors
        self.timedRequests = timedRequests
        self.latencySumMicros = latencySumMicros
    }
}

extension LedgerReader {
    /// One entry per minute with calls, of the calls that started in `[since, until)`, oldest
    /// first. One indexed range scan; at most one row per minute of the span.
    public func activityPerMinute(since: Int64, until: Int64) throws -> [MinuteActivity] {
        let errorOutcomes = Outcome.allCases.filter(\.isError).map { "'\($0.rawValue)'" }.joined(separator: ",")
        let refused = "outcome LIKE 'refused\\_%' ESCAPE '\\'"
        return try withConnection { connection in
            let s = try connection.prepare("""
                SELECT started_at / 60000000, COUNT(*), SUM(\(refused)), SUM(outcome IN (\(errorOutcomes))),
                       SUM(NOT \(refused)), SUM(CASE WHEN \(refused) THEN 0 ELSE latency_us END)
                FROM calls WHERE started_at >= ?1 AND started_at < ?2
                GROUP BY 1 ORDER BY 1
                """)
            s.bind(since, at: 1)
            s.bind(until, at: 2)
            var rows: [MinuteActivity] = []
            while try s.step() {
                rows.append(MinuteActivity(minute: s.int64(at: 0) * 60_000_000, requests: s.int(at: 1),
                                           refused: s.int(at: 2), errors: s.int(at: 3),
                                           timedRequests: s.int(at: 4), latencySumMicros: s.int64(at: 5)))
            }
            return rows
        }
    }
}
