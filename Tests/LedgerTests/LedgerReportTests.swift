import Metering
import Testing
@testable import Ledger
import LedgerTestSupport

@Suite struct LedgerReportTests {
    /// A varied month: three users (and calls without one), two teams, two models, five days,
    /// refusals, errors, a served model differing from the requested one, and one without a model.
    static func month() -> [LedgerEntry] {
        var entries: [LedgerEntry] = []
        let users: [(String?, String?)] = [("alice", "research"), ("bob", "research"), ("carol", nil), (nil, nil)]
        for n in 0..<400 {
            let (user, team) = users[n % users.count]
            let outcome: Outcome = user == nil ? .refusedAuth : (n % 13 == 0 ? .upstreamError : (n % 17 == 0 ? .timeout : .ok))
            let day = Int64(n % 5) * UnixTime.microsPerDay
            let usage = outcome.isRefusal ? Usage.zero
                : Usage(inputTokens: 10 * n, cachedInputTokens: n, cacheWriteTokens: n % 3, outputTokens: 5 * n,
                        reasoningTokens: n % 7)
            var entry = sampleEntry(n, startedAt: day0 + day + Int64(n) * 1_000, latency: Int64(n % 50) * 1_000 + 7,
                                    user: user, team: team, model: n % 3 == 0 ? "claude-3-5-haiku" : "gpt-4o-mini",
                                    outcome: outcome, usage: usage, cost: Money(picodollars: Int64(n) * 1_234_567))
            if n % 10 == 1 { entry.modelServed = nil }                     // falls back to requested
            if n % 50 == 2 { entry.modelServed = nil; entry.modelRequested = nil }
            entries.append(entry)
        }
        return entries
    }

    private func ledger(_ entries: [LedgerEntry]) throws -> (TemporaryDirectory, LedgerReader) {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        #expect(appendAll(entries, to: writer).isEmpty)
        writer.close()
        return (dir, try LedgerReader(path: dir.path()))
    }

    private func label(_ entry: LedgerEntry, _ dimension: ReportDimension) -> String {
        switch dimension {
        case .user: return entry.user ?? "(none)"
        case .team: return entry.team ?? "(none)"
        case .model: return entry.modelServed ?? entry.modelRequested ?? "(none)"
        case .day: return Day(unixSeconds: entry.startedAt / 1_000_000).description
        case .week:
            let day = Day(unixSeconds: entry.startedAt / 1_000_000)
            // 1970-01-01 was a Thursday; Monday is 3 days before it.
            let monday = day.daysSinceEpoch - ((day.daysSinceEpoch + 3) % 7)
            return Day(daysSinceEpoch: monday).description
        case .month: return String(Day(unixSeconds: entry.startedAt / 1_000_000).description.prefix(7))
        case .provider: return entry.provider ?? "(none)"
        case .plan: return entry.plan ?? "(none)"
        case .key: return entry.keyId ?? "(none)"
        }
    }

    /// The report computed naively in Swift, to compare against the engine.
    private func expected(_ entries: [LedgerEntry], _ query: ReportQuery) -> [[String]: ReportFigures] {
        NaiveReport.report(entries, query).rows
    }

    @Test(arguments: [[], [ReportDimension.user], [.team], [.model], [.day], [.user, .model], [.day, .team, .user, .model],
                      [.week], [.month], [.provider], [.plan], [.key], [.month, .provider, .user]])
    func matchesNaiveComputation(groupBy: [ReportDimension]) throws {
        let entries = Self.month()
        let (dir, reader) = try ledger(entries)
        _ = dir
        let query = ReportQuery(since: day0 + UnixTime.microsPerDay / 2, until: day0 + 4 * UnixTime.microsPerDay,
                                groupBy: groupBy)
        let report = try reader.report(query)
        let want = expected(entries, query)
        #expect(report.rows.count == want.count)
        for row in report.rows {
            // Percentiles within the documented error of nearest-rank (LatencyBuckets).
            NaiveReport.expectMatch(row.figures, want[row.values] ?? ReportFigures(), "group \(row.values)")
        }
        // In the grouping's order: periods by date, other groups costliest first (by the naive
        // sums of each outer group), each inner group under its outer one.
        var groupCost: [[String]: Int128] = [:]
        for (values, figures) in want {
            for level in values.indices { groupCost[Array(values[...level]), default: 0] += figures.cost.picodollars }
        }
        for (a, b) in zip(report.rows, report.rows.dropFirst()) {
            guard let level = groupBy.indices.first(where: { a.values[$0] != b.values[$0] }) else {
                Issue.record("two rows for \(a.values)"); continue
            }
            let (costA, costB) = (groupCost[Array(a.values[...level])] ?? 0, groupCost[Array(b.values[...level])] ?? 0)
            if [.day, .week, .month].contains(groupBy[level]) {
                #expect(a.values[level] < b.values[level], "\(a.values) before \(b.values): periods in date order")
            } else {
                #expect(costA > costB || (costA == costB && a.values[level] < b.values[level]),
                        "\(a.values) before \(b.values): costliest group first")
            }
        }

        var sum = ReportFigures()
        for row in report.rows { sum.absorb(row.figures) }
        for path in [\ReportFigures.latencyP95Micros, \.latencyP50Micros, \.ttftP50Micros] as [WritableKeyPath<ReportFigures, Int64?>] {
            sum[keyPath: path] = report.totals[keyPath: path]
        }
        sum.activeDays = report.totals.activeDays
        #expect(sum == report.totals)
        NaiveReport.expectMatch(report.totals, NaiveReport.report(entries, query).totals, "totals")
    }

    @Test func labelsAndRange() throws {
        let entries = Self.month()
        let (dir, reader) = try ledger(entries)
        _ = dir
        let byUser = try reader.report(ReportQuery(since: 0, until: .max, groupBy: [.user]))
        #expect(Set(byUser.rows.map(\.values)) == [["alice"], ["bob"], ["carol"], ["(none)"]])
        let none = try #require(byUser.rows.first { $0.values == ["(none)"] })
        #expect(none.refused == 100 && none.requests == 100 && none.cost.picodollars > 0)
        #expect(none.latencyMeanMicros == nil && none.latencyP95Micros == nil)
        #expect(byUser.value(of: .user, in: none) == "(none)")
        #expect(byUser.value(of: .team, in: none) == nil)

        let byDay = try reader.report(ReportQuery(days: Day("2025-01-02")!, through: Day("2025-01-03")!, groupBy: [.day]))
        #expect(Set(byDay.rows.map(\.values)) == [["2025-01-02"], ["2025-01-03"]])
        #expect(byDay.totals.requests == 160)

        // Half-open: a call at `since` counts, one at `until` does not.
        let first = entries[0].startedAt
        #expect(try reader.report(ReportQuery(since: first, until: first + 1)).totals.requests == 1)
        #expect(try reader.report(ReportQuery(since: first - 1, until: first)).totals.requests == 0)
        #expect(try reader.report(ReportQuery(since: 0, until: 1)).rows.isEmpty)
    }

    /// Money is summed in Int128 (cells store Int128 sums), so a total past Int64.max
    /// pico-dollars is exact (see also ReportEngineTests.hugeCellsAreExact).
    @Test func totalsBeyondInt64AreExact() throws {
        let big = Money(picodollars: 4_000_000_000_000_000_000)  // $4M in one call
        let entries = (0..<3).map { n in
            sampleEntry(n, startedAt: day0 + Int64(n) * UnixTime.microsPerDay, cost: big)
        }
        let (dir, reader) = try ledger(entries)
        _ = dir
        let report = try reader.report(ReportQuery(since: 0, until: .max, groupBy: [.user]))
        #expect(report.rows.count == 1)
        #expect(report.totals.cost.picodollars == 3 * Int128(big.picodollars))
        #expect(report.totals.cost.formatted() == "12000000.000000")
    }

    @Test("weeks start on Monday and months are calendar months (UTC)")
    func weeksAndMonths() throws {
        let sunday = Day("2025-01-05")!.unixSeconds * 1_000_000
        let entries = [sampleEntry(1, startedAt: sunday + 3_600_000_000),
                       sampleEntry(2, startedAt: sunday + UnixTime.microsPerDay),        // Monday 2025-01-06
                       sampleEntry(3, startedAt: Day("2025-02-01")!.unixSeconds * 1_000_000)]
        let (dir, reader) = try ledger(entries)
        defer { reader.close(); _ = dir }
        let weeks = try reader.report(ReportQuery(since: 0, until: .max, groupBy: [.week])).rows.map(\.values).sorted { $0[0] < $1[0] }
        #expect(weeks == [["2024-12-30"], ["2025-01-06"], ["2025-01-27"]])
        let months = try reader.report(ReportQuery(since: 0, until: .max, groupBy: [.month])).rows.map(\.values).sorted { $0[0] < $1[0] }
        #expect(months == [["2025-01"], ["2025-02"]])
    }

    @Test("filters select calls by user, team, model or none; top folds the rest so totals still add up")
    func filtersAndTop() throws {
        let entries = Self.month()
        let (dir, reader) = try ledger(entries)
        defer { reader.close(); _ = dir }
        let all = ReportQuery(since: 0, until: .max, groupBy: [.user])
        for (dimension, value) in [(ReportDimension.user, "alice"), (.team, "research"), (.model, "gpt-4o-mini"),
                                   (.user, ReportDimension.noneLabel), (.day, "2025-01-02")] {
            var filtered = all
            filtered.filters = [dimension: value]
            let report = try reader.report(filtered)
            let matching = entries.filter { label(for: $0, dimension) == value }
            #expect(report.totals.requests == matching.count, "\(dimension)=\(value)")
            var cost = Money.Total()
            for e in matching { cost.add(e.cost) }
            #expect(report.totals.cost == cost, "\(dimension)=\(value)")
        }
        var both = all
        both.filters = [.user: "alice", .model: "claude-3-5-haiku"]
        #expect(try reader.report(both).totals.requests
                == entries.filter { $0.user == "alice" && label(for: $0, .model) == "claude-3-5-haiku" }.count)

        let full = try reader.report(all)
        let top = full.top(1)
        #expect(top.rows.count == 2)
        #expect(top.rows[0] == full.rows[0])
        #expect(top.rows[1].values == [Report.othersLabel])
        var sum = ReportFigures()
        for row in top.rows { sum.absorb(row.figures) }
        #expect(sum.cost == full.totals.cost && sum.requests == full.totals.requests)
    }

    private func label(for entry: LedgerEntry, _ dimension: ReportDimension) -> String { label(entry, dimension) }
}
