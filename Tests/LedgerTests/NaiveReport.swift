import Foundation
import Metering
import Testing
@testable import Ledger

/// Reports computed the slow, obvious way from entries, to check the engine against: labels from
/// Foundation's calendar in the zone, exact nearest-rank percentiles, retries by brute force.
enum NaiveReport {
    static func calendar(_ zone: TimeZone) -> Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        return calendar
    }

    static func label(_ e: LedgerEntry, _ dimension: ReportDimension, _ zone: TimeZone) -> String {
        label(e, dimension, calendar(zone))
    }

    static func label(_ e: LedgerEntry, _ dimension: ReportDimension, _ calendar: Calendar) -> String {
        let date = Date(timeIntervalSince1970: Double(floorDiv(e.startedAt, 1_000_000)))
        func text(_ c: DateComponents) -> String {
            String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
        }
        switch dimension {
        case .user: return e.user ?? "(none)"
        case .team: return e.team ?? "(none)"
        case .model: return e.modelServed ?? e.modelRequested ?? "(none)"
        case .provider: return e.provider ?? "(none)"
        case .plan: return e.plan ?? "(none)"
        case .key: return e.keyId ?? "(none)"
        case .day: return text(calendar.dateComponents([.year, .month, .day], from: date))
        case .week:
            let weekday = calendar.component(.weekday, from: date)  // 1 = Sunday
            let monday = calendar.date(byAdding: .day, value: -((weekday + 5) % 7), to: date)!
            return text(calendar.dateComponents([.year, .month, .day], from: monday))
        case .month:
            return String(text(calendar.dateComponents([.year, .month, .day], from: date)).prefix(7))
        }
    }

    /// Ids of the calls that are retries by the definition (brute force).
    static func retries(_ entries: [LedgerEntry]) -> Set<String> {
        var result = Set<String>()
        var byFingerprint: [String: [LedgerEntry]] = [:]
        for e in entries {
            guard let user = e.user, let hash = e.requestHash else { continue }
            byFingerprint["\(user) \(hash)", default: []].append(e)
        }
        for e in entries {
            guard let user = e.user, let hash = e.requestHash else { continue }
            if byFingerprint["\(user) \(hash)"]!.contains(where: { o in
                o.id != e.id
                    && (o.startedAt, o.id) < (e.startedAt, e.id)
                    && e.startedAt - o.startedAt <= ReportQuery.retryWindowMicros
            }) { result.insert(e.id) }
        }
        return result
    }

    static func nearestRank(_ values: [Int64], _ percent: Int) -> Int64? {
        guard !values.isEmpty else { return nil }
        return values.sorted()[(percent * values.count + 99) / 100 - 1]
    }

    struct Group {
        var figures = ReportFigures()
        var latencies: [Int64] = []
        var ttfts: [Int64] = []
        var days = Set<String>()
    }

    static func report(_ entries: [LedgerEntry], _ query: ReportQuery) -> (rows: [[String]: ReportFigures], totals: ReportFigures) {
        let retried = retries(entries)
        var groups: [[String]: Group] = [:]
        var all = Group()
        let calendar = calendar(query.timeZone)
        for e in entries where e.startedAt >= query.since && e.startedAt < query.until {
            if query.filters.contains(where: { label(e, $0.key, calendar) != $0.value }) { continue }
            let key = query.groupBy.map { label(e, $0, calendar) }
            let day = label(e, .day, calendar)
            func add(_ g: inout Group) {
                g.figures.requests += 1
                if e.outcome.isRefusal { g.figures.refused += 1 } else {
                    g.figures.timedRequests += 1
                    g.figures.latencySumMicros += e.latencyMicros
                    g.latencies.append(e.latencyMicros)
                }
                if let ttft = e.ttftMicros { g.ttfts.append(ttft) }
                if e.outcome.isError { g.figures.errors += 1 }
                g.figures.inputTokens += e.usage.inputTokens
                g.figures.cachedInputTokens += e.usage.cachedInputTokens
                g.figures.cacheWriteTokens += e.usage.cacheWriteTokens
                g.figures.outputTokens += e.usage.outputTokens
                g.figures.reasoningTokens += e.usage.reasoningTokens
                g.figures.webSearches += e.usage.webSearches
                g.figures.fileSearches += e.usage.fileSearches
                g.figures.cost.add(e.cost)
                if retried.contains(e.id) { g.figures.retries += 1; g.figures.retryCost.add(e.cost) }
                g.days.insert(day)
            }
            add(&groups[key, default: Group()])
            add(&all)
        }
        func finish(_ g: Group) -> ReportFigures {
            var f = g.figures
            f.latencyP50Micros = nearestRank(g.latencies, 50)
            f.latencyP95Micros = nearestRank(g.latencies, 95)
            f.ttftP50Micros = nearestRank(g.ttfts, 50)
            f.activeDays = g.days.count
            return f
        }
        return (groups.mapValues(finish), finish(all))
    }

    /// Expects `got` to equal `want`, percentiles within the documented relative error.
    static func expectMatch(_ got: ReportFigures, _ want: ReportFigures, _ context: String,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        func close(_ a: Int64?, _ b: Int64?) -> Bool {
            guard let a, let b else { return a == nil && b == nil }
            return abs(Double(a - b)) <= LatencyBuckets.relativeError * Double(b)
        }
        #expect(close(got.latencyP50Micros, want.latencyP50Micros), "p50 \(context)", sourceLocation: sourceLocation)
        #expect(close(got.latencyP95Micros, want.latencyP95Micros), "p95 \(context)", sourceLocation: sourceLocation)
        #expect(close(got.ttftP50Micros, want.ttftP50Micros), "ttft \(context)", sourceLocation: sourceLocation)
        var a = got, b = want
        for f in [\ReportFigures.latencyP50Micros, \.latencyP95Micros, \.ttftP50Micros] as [WritableKeyPath<ReportFigures, Int64?>] {
            a[keyPath: f] = nil
            b[keyPath: f] = nil
        }
        #expect(a == b, "\(context)", sourceLocation: sourceLocation)
    }
}
