import Metering

/// Folds rollup cells and raw calls into report groups: counters, histograms and active days.
struct ReportFolding {
    private struct Group {
        var figures = ReportFigures()
        var latency = DenseHistogram()
        var ttft = DenseHistogram()
        var days = Set<Int>()
    }

    let query: ReportQuery
    var calendar: LocalCalendar
    let level: RollupLevel
    private let percentiles: Bool
    /// No grouping or filter names a key column (user, team, model, …): raw calls are read
    /// without them, all under one key (the last hour of a busy ledger reads faster by half).
    private let keyless: Bool
    /// Rollup keys by id; raw rows get negative ids of their own (`rawKeyIds`).
    private var keys: [Int64: RollupKey]
    private var rawKeyIds: [RollupKey: Int64] = [:]
    private var groups: [Group] = []
    private var groupIndex: [[String]: Int] = [:]
    private var segmentLabels: [ReportDimension: String] = [:]
    /// Group of each key id in the current segment; -1 when the filters exclude it.
    private var segmentGroups: [Int64: Int] = [:]
    private var quarterDays: [Int64: [(day: Int, low: Int64, high: Int64)]] = [:]
    /// Calls not yet in the cells, by start (`loadTail`).
    private var tail: [(key: RollupKey, facts: RollupFacts)] = []

    init(query: ReportQuery, calendar: LocalCalendar, level: RollupLevel, keys: [Int64: RollupKey]) {
        self.query = query
        self.calendar = calendar
        self.level = level
        self.percentiles = query.figures == .all
        self.keys = keys
        let timeOnly: Set<ReportDimension> = [.day, .week, .month]
        keyless = query.groupBy.allSatisfy(timeOnly.contains) && query.filters.keys.allSatisfy(timeOnly.contains)
    }

    mutating func startSegment(_ index: Int, labels: [ReportDimension: String]) {
        segmentLabels = labels
        segmentGroups.removeAll(keepingCapacity: true)
    }

    private static func label(_ key: RollupKey, _ dimension: ReportDimension) -> String? {
        switch dimension {
        case .user: return key.user
        case .team: return key.team
        case .model: return key.model
        case .provider: return key.provider
        case .plan: return key.plan
        case .key: return key.keyId
        case .day, .week, .month: return nil
        }
    }

    private mutating func group(of keyId: Int64) -> Int {
        if let known = segmentGroups[keyId] { return known }
        let key = keys[keyId] ?? RollupKey(user: nil, team: nil, model: nil, provider: nil, plan: nil, keyId: nil)
        var index = -1
        let passes = query.filters.allSatisfy { dimension, wanted in
            // Time filters narrowed the period already.
            if [.day, .week, .month].contains(dimension) { return true }
            let value = Self.label(key, dimension)
            return wanted == ReportDimension.noneLabel ? value == nil : value == wanted
        }
        if passes {
            let labels = query.groupBy.map { segmentLabels[$0] ?? Self.label(key, $0) ?? ReportDimension.noneLabel }
            if let existing = groupIndex[labels] {
                index = existing
            } else {
                index = groups.count
                groups.append(Group())
                groupIndex[labels] = index
            }
        }
        segmentGroups[keyId] = index
        return index
    }

    private mutating func days(ofUTCDay day: Int64) -> [(day: Int, low: Int64, high: Int64)] {
        if let known = quarterDays[day] { return known }
        let computed = calendar.quarterDays(ofUTCDay: day)
        quarterDays[day] = computed
        return computed
    }

    /// Cells of `span` numbered `[from, to)`, and the tail's calls in their time.
    mutating func readCells(_ span: RollupSpan, from: Int64, to: Int64, on connection: SQLiteConnection) throws {
        foldTail(since: from * span.micros, until: to * span.micros)
        try foldCells(span, from: from, to: to, on: connection)
    }

    /// Hours `[from, to)` of UTC day `day`: its day cells (presence masked to those hours) less
    /// its hour cells outside them, and the tail's calls in those hours. Groups whose calls all
    /// fell outside end with zero requests and are dropped by `report()`.
    mutating func readDayPart(_ day: Int64, hours from: Int64, _ to: Int64, on connection: SQLiteConnection) throws {
        let hour = RollupSpan.hour.micros
        foldTail(since: from * hour, until: to * hour)
        let (first, last) = (4 * (from - day * 24), 4 * (to - day * 24))
        func bits(_ range: Range<Int64>) -> Int64 {
            range.isEmpty ? 0 : Int64(bitPattern: (UInt64.max >> UInt64(64 - range.count)) << UInt64(range.lowerBound))
        }
        let mask = (low: bits(max(first, 0)..<min(last, 48)), high: bits(max(first - 48, 0)..<max(last - 48, 0)))
        try foldCells(.day, from: day, to: day + 1, mask: mask, on: connection)
        try foldCells(.hour, from: day * 24, to: from, sign: -1, on: connection)
        try foldCells(.hour, from: to, to: day * 24 + 24, sign: -1, on: connection)
    }

    /// Adds (`sign` 1) or takes away (-1: counters and histograms, not presence) cells of `span`
    /// numbered `[from, to)`; `mask` keeps only those quarter hours of a day cell's presence.
    private mutating func foldCells(_ span: RollupSpan, from: Int64, to: Int64, sign: Int = 1,
                                    mask: (low: Int64, high: Int64) = (-1, -1), on connection: SQLiteConnection) throws {
        guard from < to else { return }
        let s = try connection.prepare("""
            SELECT \(span.column), key, \(RollupStore.cellColumns) FROM \(level.table(span))
            WHERE \(span.column) >= ?1 AND \(span.column) < ?2
            """)
        s.bind(from, at: 1)
        s.bind(to, at: 2)
        let sign64 = Int64(sign), sign128 = Int128(sign)
        while try s.step() {
            let g = group(of: s.int64(at: 1))
            guard g >= 0 else { continue }
            let c: Int32 = 2
            groups[g].figures.requests += sign * s.int(at: c)
            groups[g].figures.refused += sign * s.int(at: c + 1)
            groups[g].figures.errors += sign * s.int(at: c + 2)
            groups[g].figures.inputTokens += sign * s.int(at: c + 3)
            groups[g].figures.cachedInputTokens += sign * s.int(at: c + 4)
            groups[g].figures.cacheWriteTokens += sign * s.int(at: c + 5)
            groups[g].figures.outputTokens += sign * s.int(at: c + 6)
            groups[g].figures.reasoningTokens += sign * s.int(at: c + 7)
            groups[g].figures.cost.picodollars += sign128 * Int128(storedLow: s.int64(at: c + 8), high: s.int64(at: c + 9))
            groups[g].figures.timedRequests += sign * s.int(at: c + 10)
            groups[g].figures.latencySumMicros += sign64 * s.int64(at: c + 11)
            groups[g].figures.retries += sign * s.int(at: c + 12)
            groups[g].figures.retryCost.picodollars += sign128 * Int128(storedLow: s.int64(at: c + 13), high: s.int64(at: c + 14))
            groups[g].figures.webSearches += sign * s.int(at: c + 19)
            groups[g].figures.fileSearches += sign * s.int(at: c + 20)
            if percentiles {
                s.withBlob(at: c + 15) { groups[g].latency.add(encoded: $0, sign: sign) }
                s.withBlob(at: c + 16) { groups[g].ttft.add(encoded: $0, sign: sign) }
            }
            guard sign > 0 else { continue }
            var low = s.int64(at: c + 17), high = s.int64(at: c + 18)
            let number = s.int64(at: 0)
            let utcDay: Int64
            if span == .hour {
                utcDay = floorDiv(number, 24)
                let first = Int64(4 * (number - utcDay * 24))
                (low, high) = first < 48 ? (low << first, 0) : (0, low << (first - 48))
            } else {
                utcDay = number
                (low, high) = (low & mask.low, high & mask.high)
            }
            for local in days(ofUTCDay: utcDay) where (local.low & low) | (local.high & high) != 0 {
                groups[g].days.insert(local.day)
            }
        }
    }

    private var columns: String { RollupFacts.callColumns(keyless: keyless) }

    /// Raw calls that started in `[since, until)`.
    mutating func readCalls(since: Int64, until: Int64, on connection: SQLiteConnection) throws {
        let s = try connection.prepare("SELECT \(columns) FROM calls WHERE started_at >= ?1 AND started_at < ?2")
        s.bind(since, at: 1)
        s.bind(until, at: 2)
        while try s.step() {
            let (key, facts) = RollupFacts.call(s)
            fold(key, facts)
        }
    }

    /// Loads the calls the cells do not hold yet (rowid past `through`, see `PendingRollups`)
    /// that started in `[since, until)`; `readCells` adds them to the cells it reads.
    mutating func loadTail(after through: Int64, since: Int64, until: Int64, on connection: SQLiteConnection) throws {
        let s = try connection.prepare("""
            SELECT \(columns) FROM calls WHERE rowid > ?1 AND +started_at >= ?2 AND +started_at < ?3
            """)
        // `+`: the tail is a short rowid range; the started_at index would scan the whole period.
        s.bind(through, at: 1)
        s.bind(since, at: 2)
        s.bind(until, at: 3)
        while try s.step() { tail.append(RollupFacts.call(s)) }
        tail.sort { $0.facts.startedAt < $1.facts.startedAt }
    }

    /// The tail's calls that started in `[since, until)`.
    private mutating func foldTail(since: Int64, until: Int64) {
        guard !tail.isEmpty else { return }
        var low = 0, high = tail.count
        while low < high {
            let middle = (low + high) / 2
            if tail[middle].facts.startedAt < since { low = middle + 1 } else { high = middle }
        }
        var index = low
        while index < tail.count, tail[index].facts.startedAt < until {
            fold(tail[index].key, tail[index].facts)
            index += 1
        }
    }

    private mutating func fold(_ key: RollupKey, _ facts: RollupFacts) {
        let keyId: Int64
        if let known = rawKeyIds[key] {
            keyId = known
        } else {
            keyId = -Int64(rawKeyIds.count) - 1
            rawKeyIds[key] = keyId
            keys[keyId] = key
        }
        let g = group(of: keyId)
        guard g >= 0 else { return }
        var cell = RollupCell()
        cell.count(facts, quarter: 0)
        var f = ReportFigures()
        f.requests = 1
        f.refused = cell.refused
        f.errors = cell.errors
        f.inputTokens = cell.inputTokens
        f.cachedInputTokens = cell.cachedInputTokens
        f.cacheWriteTokens = cell.cacheWriteTokens
        f.outputTokens = cell.outputTokens
        f.reasoningTokens = cell.reasoningTokens
        f.cost.picodollars = cell.cost
        f.timedRequests = cell.timed
        f.latencySumMicros = cell.latencySum
        f.retries = cell.retries
        f.retryCost.picodollars = cell.retryCost
        f.webSearches = cell.webSearches
        f.fileSearches = cell.fileSearches
        groups[g].figures.absorb(f)
        if percentiles {
            if !facts.isRefusal { groups[g].latency.add(value: facts.latency) }
            if let ttft = facts.ttft { groups[g].ttft.add(value: ttft) }
        }
        groups[g].days.insert(calendar.localDay(of: facts.startedAt))
    }

    /// Rows by cost (ties by label), and totals over all calls.
    func report() -> Report {
        var totals = ReportFigures()
        var latency = DenseHistogram()
        var ttft = DenseHistogram()
        var days = Set<Int>()
        var rows: [ReportRow] = []
        for (labels, index) in groupIndex {
            let group = groups[index]
            // Only a day part can leave a group without calls (all outside its hours).
            guard group.figures.requests > 0 else { continue }
            var figures = group.figures
            Self.fill(&figures, latency: group.latency, ttft: group.ttft, days: group.days.count)
            totals.absorb(figures)
            latency.add(group.latency)
            ttft.add(group.ttft)
            days.formUnion(group.days)
            rows.append(ReportRow(values: labels, figures: figures))
        }
        Self.fill(&totals, latency: latency, ttft: ttft, days: days.count)
        return Report(query: query, rows: Report.ordered(rows, by: query.groupBy), totals: totals)
    }

    private static func fill(_ figures: inout ReportFigures, latency: DenseHistogram, ttft: DenseHistogram, days: Int) {
        figures.latencyP50Micros = latency.percentile(50)
        figures.latencyP95Micros = latency.percentile(95)
        figures.ttftP50Micros = ttft.percentile(50)
        figures.activeDays = days
    }
}
