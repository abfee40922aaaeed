// Generates a realistic month of calls through the real LedgerWriter (so retry flags and rollups
// are the writer's own), timing the writer. Usage: ReportSpeedBench PATH ROWS
// A deterministic mix: 2,000 users in 40 teams on 3 plans, 8 models on 2 providers (each user has
// a main and a second model), 10 % of users with two keys, working-hours traffic over
// November 2025 (UTC), ~3 % immediate retries of the same body, ~2 % refusals, ~1 % errors.
// Rows are appended in order of their end, so started_at is slightly out of order, as in a server.
import Foundation
import Ledger
import Metering

struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

let arguments = CommandLine.arguments
// `ReportSpeedBench PATH report`: times opening the ledger (a migration, if one is due) and the
// engine alone (LedgerReader.report) on November, UTC and Berlin, with all figures and sums only.
if arguments.count == 3, arguments[2] == "report" {
    let clock = ContinuousClock()
    let opening = clock.now
    let reader = try LedgerReader(path: arguments[1])
    print("open (and migrate if due): \(clock.now - opening)")
    let utc = ReportQuery(days: Day("2025-11-01")!, through: Day("2025-11-30")!)
    var berlin = ReportQuery(since: 1_761_951_600 * 1_000_000, until: 1_764_543_600 * 1_000_000)
    berlin.timeZone = TimeZone(identifier: "Europe/Berlin")!
    let runs: [(String, ReportQuery, [ReportDimension], ReportFigureSet)] = [
        ("UTC", utc, [.user], .all), ("UTC", utc, [.day, .user], .all), ("UTC", utc, [.day, .user, .team], .sums),
        ("UTC", utc, [.model], .all), ("UTC", utc, [.user, .model], .all),
        ("Berlin", berlin, [.user], .all), ("Berlin", berlin, [.day, .user, .team], .sums),
    ]
    for (zone, base, groupBy, figures) in runs {
        var query = base
        query.groupBy = groupBy
        query.figures = figures
        let started = clock.now
        let report = try reader.report(query)
        print("\(zone) November by \(groupBy.map(\.rawValue).joined(separator: ",")) (\(figures)): \(report.rows.count) rows, " +
              "\(report.totals.requests) calls, \(report.totals.retries) retries in \(clock.now - started)")
    }
    exit(0)
}
guard arguments.count == 3, let rows = Int(arguments[2]), rows > 0 else {
    FileHandle.standardError.write("usage: ReportSpeedBench PATH ROWS\n".data(using: .utf8)!)
    exit(2)
}
let path = arguments[1]
/// WRITER_ONLY=1: build every entry first, then time only append + flush (the writer in isolation).
let writerOnly = ProcessInfo.processInfo.environment["WRITER_ONLY"] == "1"
var prebuilt: [LedgerEntry] = []
let models: [(String, String, Int64, Int64)] = [  // model, provider, input and output pd per token
    ("gpt-4o", "openai", 2_500_000, 10_000_000), ("gpt-4o-mini", "openai", 150_000, 600_000),
    ("gpt-4.1", "openai", 2_000_000, 8_000_000), ("gpt-4.1-mini", "openai", 400_000, 1_600_000),
    ("o4-mini", "openai", 1_100_000, 4_400_000), ("claude-sonnet-4", "anthropic", 3_000_000, 15_000_000),
    ("claude-3-5-haiku", "anthropic", 800_000, 4_000_000), ("claude-opus-4", "anthropic", 15_000_000, 75_000_000),
]
let plans = ["starter", "team", "enterprise"]
let userCount = 2_000
let monthStart: Int64 = 1_761_955_200 * 1_000_000  // 2025-11-01T00:00:00Z
let monthMicros: Int64 = 30 * 86_400 * 1_000_000

// Traffic weight per hour of day (busy 07-19 UTC), normalised into a cumulative table.
let hourWeights: [Double] = (0..<24).map { h in (7..<19).contains(h) ? 10 : (h == 6 || h == 19 ? 5 : 1) }
let weightSum = hourWeights.reduce(0, +)

var rng = SplitMix(state: 2025)
let writer = try LedgerWriter(path: path)
let clock = ContinuousClock()
let started = clock.now
var lastHash = [Int64](repeating: 0, count: userCount)
var pending: [LedgerEntry] = []
var written = 0
var n = 0

/// WRITER_SPAN_SECONDS=N: the month's traffic compressed into its first N seconds (the same calls,
/// users and order), as rows arrive when the writer is loaded: a sustained rate fills few hours,
/// where a month of 200,000 calls gives nearly every call cells of its own.
let spanMicros = ProcessInfo.processInfo.environment["WRITER_SPAN_SECONDS"].flatMap(Double.init).map { $0 * 1e6 }
func placed(_ start: Int64) -> Int64 {
    guard let spanMicros else { return start }
    return monthStart + Int64(Double(start - monthStart) * spanMicros / Double(monthMicros))
}

@MainActor func call(user: Int, start: Int64, hash: Int64) -> LedgerEntry {
    let start = placed(start)
    let (model, provider, inPrice, outPrice) = models[
        rng.below(100) < 70 ? user % 8 : (rng.below(100) < 85 ? (user / 8) % 8 : rng.below(8))]
    let roll = rng.below(1000)
    let outcome: Outcome = roll < 20 ? .refusedRate : (roll < 28 ? .upstreamError : (roll < 30 ? .timeout : .ok))
    let refused = outcome.isRefusal
    let input = refused ? 0 : 200 + rng.below(4_000)
    let output = refused || outcome != .ok ? 0 : 20 + rng.below(1_500)
    let latency: Int64 = refused ? Int64(200 + rng.below(800)) : Int64(300_000 + (rng.unit() * rng.unit()) * 20_000_000)
    n += 1
    return LedgerEntry(
        id: "call-\(n)", requestId: "req-\(n)", startedAt: start, firstByteAt: refused ? nil : start + latency / 4,
        endedAt: start + latency, keyId: "key-\(user)-\(user % 10 == 0 ? rng.below(2) : 0)", user: "user-\(user)",
        team: "team-\(user % 40)", dialect: .openai, route: "chat.completions", provider: refused ? nil : provider,
        modelRequested: model, modelServed: refused ? nil : model, stream: rng.below(2) == 0,
        status: refused ? 429 : (outcome == .ok ? 200 : 502), outcome: outcome,
        usage: Usage(inputTokens: input, outputTokens: output), usageSource: refused ? .none : .provider,
        cost: Money(picodollars: Int64(input) * inPrice + Int64(output) * outPrice),
        ttftMicros: refused ? nil : latency / 4, upstreamMicros: refused ? nil : latency - 500,
        plan: plans[(user % 40) % 3], requestHash: hash)
}

@MainActor func drain(upTo limit: Int64) {
    // Calls end in any order: append those that ended by `limit`, by their end.
    pending.sort { $0.endedAt < $1.endedAt }
    let ready = pending.prefix { $0.endedAt <= limit }
    written += ready.count
    if writerOnly {
        prebuilt.append(contentsOf: ready)
    } else {
        for entry in ready { writer.append(entry) { _ in } }
        if written % 200_000 < ready.count { writer.flush() }
    }
    pending.removeFirst(ready.count)
}

// One second of traffic at a time, at the hour's share of the month's rows.
let perSecondBase = Double(rows) / (30 * 3_600 * weightSum)
var second: Int64 = 0
var carry = 0.0
while n < rows {
    let t = monthStart + second * 1_000_000
    let hour = Int((second / 3_600) % 24)
    carry += perSecondBase * hourWeights[hour]
    while carry >= 1 && n < rows {
        carry -= 1
        let user = rng.below(userCount)
        let hash = Int64(bitPattern: rng.next())
        pending.append(call(user: user, start: t + Int64(rng.below(1_000_000)), hash: hash))
        lastHash[user] = hash
        if rng.below(1000) < 30 && n < rows {  // the user retries or regenerates the same body
            pending.append(call(user: user, start: t + Int64(2 + rng.below(60)) * 1_000_000, hash: hash))
        }
    }
    second += 1
    if second % 60 == 0 { drain(upTo: t) }
    if second * 1_000_000 >= monthMicros { second = 0 }  // wraps only if rows outrun the month's weights
}
drain(upTo: .max)
/// CPU time (user + system) of the process so far, in seconds.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}
if writerOnly && ProcessInfo.processInfo.environment["ONE_PER_COMMIT"] == "1" {
    // One call per transaction, as at one client connection: recorded as an event loop records
    // it (`stage` + `recordStaged`: a write to the ledger's journal, all its answer waits for),
    // then committed by the writer thread (`flush`): the fixed cost of a commit, which no batch shares.
    var recorded: [Duration] = []
    var durations: [Duration] = []
    recorded.reserveCapacity(prebuilt.count)
    durations.reserveCapacity(prebuilt.count)
    let cpuStart = cpuSeconds()
    for entry in prebuilt {
        let start = clock.now
        if writer.stage(entry, onCommit: { _ in }) { writer.recordStaged() }
        recorded.append(clock.now - start)
        writer.flush()
        durations.append(clock.now - start)
    }
    let cpu = cpuSeconds() - cpuStart
    func micros(_ d: Duration) -> Double { Double(d.components.attoseconds) / 1e12 + Double(d.components.seconds) * 1e6 }
    func quantiles(_ values: [Duration]) -> String {
        let sorted = values.sorted()
        return String(format: "median %.1f µs, p90 %.1f µs, p99 %.1f µs", micros(sorted[sorted.count / 2]),
                      micros(sorted[sorted.count * 9 / 10]), micros(sorted[sorted.count * 99 / 100]))
    }
    print("one call per commit: \(durations.count) calls; recorded (journal): \(quantiles(recorded)); "
          + "committed (to the end of flush): \(quantiles(durations)); "
          + String(format: "%.1f µs CPU per call (all threads)", cpu * 1e6 / Double(durations.count)))
} else if writerOnly {
    let start = clock.now
    let cpuStart = cpuSeconds()
    for entry in prebuilt { writer.append(entry) { _ in } }
    writer.flush()
    let elapsed = clock.now - start
    let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    // The main thread waits in flush, so the CPU time is the writer's (a fairer figure than the
    // wall time on a shared machine).
    let cpu = cpuSeconds() - cpuStart
    print(String(format: "writer alone: %d rows appended and committed in %.2f s: %.0f rows/s; %.2f s CPU: %.0f rows per CPU second",
                 prebuilt.count, secs, Double(prebuilt.count) / secs, cpu, Double(prebuilt.count) / cpu))
}
writer.flush()
writer.close()
let seconds = Double((clock.now - started).components.attoseconds) / 1e18 + Double((clock.now - started).components.seconds)
print(String(format: "generated %d rows through LedgerWriter in %.1f s: %.0f rows/s", written, seconds, Double(written) / seconds))
