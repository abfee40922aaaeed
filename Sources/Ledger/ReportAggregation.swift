import Metering

/// The engine behind `LedgerReader.report`: reads rollup cells where they cover the period
/// exactly and raw rows for the ragged edges, then folds them per group.
///
/// Plan: the period (clamped to the calls present, narrowed by day/week/month filters) is cut
/// into segments at the boundaries of the time dimensions grouped by (local midnights, Mondays,
/// first days of months in `query.timeZone`). Each segment is read as whole UTC days from day
/// cells, whole UTC hours from hour cells, and the rest (period edges or zone offsets off the
/// hour) from `calls`. Cells are the payer level's (`rollup_payer_days`/`_hours`, per user, team
/// and plan) unless the query groups or filters by model, provider or key (`RollupLevel.answering`). Zones whose local days do not start on a quarter hour are read
/// wholly from `calls` (no current zone; kept correct, not fast).
///
/// Calls the writer has not yet added to the cells (rowid past `meta.rollups_through`, see
/// `PendingRollups`: at most a few seconds' worth) are read raw and added where cells are read.
///
/// Money bound: none beyond one call's Int64. Cells store exact Int128 sums, raw rows are summed
/// in Int128 here, and the group sums are `Money.Total` (Int128).
///
/// Percentiles (latency p50/p95 over calls not refused, TTFT p50 over calls with one) follow
/// `LatencyBuckets`: the nearest-rank bucket's representative, within 1.9 % of the exact value.
/// Active days: distinct local dates with a call, from the cells' quarter-hour presence.
struct ReportAggregation {
    let query: ReportQuery
    /// The rollup level to read; nil: the coarsest that answers the query (tests force one).
    var level: RollupLevel? = nil

    private static let timeDimensions: Set<ReportDimension> = [.day, .week, .month]

    private struct Segment {
        var since: Int64
        var until: Int64
        var labels: [ReportDimension: String]
    }

    func run(on connection: SQLiteConnection) throws -> Report {
        var calendar = LocalCalendar(timeZone: query.timeZone)
        guard let (since, until) = try period(on: connection, calendar: &calendar) else {
            return Report(query: query, rows: [], totals: ReportFigures())
        }
        let rawOnly = !calendar.localDaysStartOnQuarterHours(since: since, until: until)
        let level = self.level ?? RollupLevel.answering(groupBy: query.groupBy, filters: query.filters.keys)
        var folding = ReportFolding(query: query, calendar: calendar, level: level,
                                    keys: try RollupStore.keys(level, on: connection))
        if !rawOnly {
            try folding.loadTail(after: try PendingRollups.mark(on: connection), since: since, until: until, on: connection)
        }
        for (index, segment) in segments(since: since, until: until, calendar: &folding.calendar).enumerated() {
            folding.startSegment(index, labels: segment.labels)
            for piece in Self.pieces(segment.since, segment.until, rawOnly: rawOnly) {
                switch piece {
                case .raw(let a, let b): try folding.readCalls(since: a, until: b, on: connection)
                case .cells(let span, let a, let b): try folding.readCells(span, from: a, to: b, on: connection)
                case .dayPart(let day, let a, let b): try folding.readDayPart(day, hours: a, b, on: connection)
                }
            }
        }
        return folding.report()
    }

    /// `[since, until)` clamped to the calls present and to the time filters; nil if empty.
    private func period(on connection: SQLiteConnection, calendar: inout LocalCalendar) throws -> (Int64, Int64)? {
        var since = query.since
        var until = query.until
        for (dimension, label) in query.filters where Self.timeDimensions.contains(dimension) {
            guard let (first, last) = Self.days(of: dimension, label: label) else { return nil }
            since = max(since, calendar.start(ofLocalDay: first))
            until = min(until, calendar.start(ofLocalDay: last + 1))
        }
        guard since < until else { return nil }
        // Two index seeks: MIN and MAX in one statement would scan the whole range instead.
        func edge(_ order: String) throws -> Int64? {
            let s = try connection.prepare(
                "SELECT started_at FROM calls WHERE started_at >= ?1 AND started_at < ?2 ORDER BY started_at \(order) LIMIT 1")
            s.bind(since, at: 1)
            s.bind(until, at: 2)
            return try s.step() ? s.int64(at: 0) : nil
        }
        var first = try edge("ASC"), last = try edge("DESC")
        // Calls pruned from `calls` live on in the hour cells (see `LedgerPrune`).
        let pruned = try LedgerPrune.prunedBefore(on: connection)
        if pruned > 0 && since < pruned {
            let hour = RollupSpan.hour.micros
            let s = try connection.prepare("SELECT MIN(hour), MAX(hour) FROM rollup_payer_hours WHERE hour >= ?1 AND hour < ?2")
            s.bind(floorDiv(since, hour), at: 1)
            s.bind(floorDiv(min(until, pruned) - 1, hour) + 1, at: 2)
            if try s.step(), let low = s.optionalInt64(at: 0), let high = s.optionalInt64(at: 1) {
                first = min(first ?? .max, max(since, low * hour))
                last = max(last ?? .min, min(until - 1, high * hour + hour - 1))
            }
        }
        guard let first, let last else { return nil }
        return (max(since, first), min(until, last + 1))
    }

    /// The local days (first, last) a day, week or month label covers; nil if it is malformed.
    private static func days(of dimension: ReportDimension, label: String) -> (Int, Int)? {
        switch dimension {
        case .day:
            return Day(label).map { ($0.daysSinceEpoch, $0.daysSinceEpoch) }
        case .week:
            guard let monday = Day(label)?.daysSinceEpoch, LocalCalendar.weekStart(of: monday) == monday else { return nil }
            return (monday, monday + 6)
        case .month:
            guard label.count == 7, let first = Day(label + "-01")?.daysSinceEpoch else { return nil }
            let next = LocalCalendar.monthStart(of: first + 31)
            return (first, next - 1)
        default:
            return nil
        }
    }

    private func segments(since: Int64, until: Int64, calendar: inout LocalCalendar) -> [Segment] {
        let grouped = query.groupBy.filter(Self.timeDimensions.contains)
        guard !grouped.isEmpty else { return [Segment(since: since, until: until, labels: [:])] }
        func bucket(_ day: Int) -> [Int] {
            grouped.map { dimension in
                switch dimension {
                case .day: return day
                case .week: return LocalCalendar.weekStart(of: day)
                default: return LocalCalendar.monthStart(of: day)
                }
            }
        }
        func labels(_ bucket: [Int]) -> [ReportDimension: String] {
            var labels: [ReportDimension: String] = [:]
            for (dimension, day) in zip(grouped, bucket) {
                labels[dimension] = dimension == .month ? LocalCalendar.monthLabel(of: day)
                    : Day(daysSinceEpoch: day).description
            }
            return labels
        }
        var result: [Segment] = []
        var start = since
        var current = bucket(calendar.localDay(of: since))
        let lastDay = calendar.localDay(of: until - 1)
        var day = calendar.localDay(of: since) + 1
        while day <= lastDay {
            let next = bucket(day)
            if next != current {
                let boundary = calendar.start(ofLocalDay: day)
                result.append(Segment(since: start, until: boundary, labels: labels(current)))
                start = boundary
                current = next
            }
            day += 1
        }
        result.append(Segment(since: start, until: until, labels: labels(current)))
        return result
    }

    enum Piece: Equatable {
        case raw(Int64, Int64)
        /// Span numbers `[from, to)`.
        case cells(RollupSpan, Int64, Int64)
        /// UTC day `day`, hours `[from, to)` of it (hour numbers): its day cells less the hour
        /// cells outside, for a part of more than 12 hours (a local day in most zones).
        case dayPart(day: Int64, from: Int64, to: Int64)
    }

    /// Whole UTC days as day cells, whole hours as hour cells (or a day less its other hours),
    /// the rest as raw rows.
    static func pieces(_ a: Int64, _ b: Int64, rawOnly: Bool) -> [Piece] {
        guard a < b else { return [] }
        let hour = RollupSpan.hour.micros
        let day = RollupSpan.day.micros
        func ceil(_ x: Int64, _ unit: Int64) -> Int64 { -floorDiv(-x, unit) * unit }
        func floor(_ x: Int64, _ unit: Int64) -> Int64 { floorDiv(x, unit) * unit }
        let ha = ceil(a, hour), hb = floor(b, hour)
        if rawOnly || ha >= hb { return [.raw(a, b)] }
        var pieces: [Piece] = []
        // Hours [x, y) of one UTC day (bounds are whole hours, so plain division is exact).
        func part(_ x: Int64, _ y: Int64) {
            guard x < y else { return }
            if y - x > 12 * hour {
                pieces.append(.dayPart(day: floorDiv(x, day), from: x / hour, to: y / hour))
            } else {
                pieces.append(.cells(.hour, x / hour, y / hour))
            }
        }
        if a < ha { pieces.append(.raw(a, ha)) }
        let da = ceil(ha, day), db = floor(hb, day)
        if da < db {
            part(ha, da)
            pieces.append(.cells(.day, da / day, db / day))
            part(db, hb)
        } else if floor(ha, day) == floor(hb - 1, day) {
            part(ha, hb)
        } else {
            let midnight = ceil(ha, day)
            part(ha, midnight)
            part(midnight, hb)
        }
        if hb < b { pieces.append(.raw(hb, b)) }
        return pieces
    }
}
