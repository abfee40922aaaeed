import Foundation
import Ledger
import Metering

/// A month of plausible traffic: 14 users in three teams, five models at their list prices,
/// office-hours load with quiet weekends, streaming TTFT, a few errors, refusals and retries.
/// Deterministic (a fixed-seed generator), so tests can rely on it.
enum RealisticLedger {
    static let users: [(name: String, team: String, appetite: Int)] = [
        ("alice", "research", 9), ("bob", "support", 4), ("carol", "research", 6), ("dave", "platform", 3),
        ("erin", "support", 5), ("frank", "platform", 2), ("grace", "research", 7), ("heidi", "support", 3),
        ("ivan", "platform", 1), ("judy", "research", 2), ("mallory <script>", "support", 1), ("niaj", "platform", 2),
        ("olivia", "research", 3), ("peggy & co", "support", 1),
    ]
    /// Model, $ per 1M input, $ per 1M output, typical latency (ms), TTFT (ms).
    static let models: [(name: String, input: Int64, output: Int64, latency: Int64, ttft: Int64)] = [
        ("gpt-4o-mini", 150_000, 600_000, 900, 250), ("gpt-4o", 2_500_000, 10_000_000, 2_400, 450),
        ("claude-sonnet-4-20250514", 3_000_000, 15_000_000, 3_100, 600),
        ("claude-haiku-4-5", 1_000_000, 5_000_000, 1_200, 300), ("gpt-4.1-mini", 400_000, 1_600_000, 1_100, 280),
    ]

    /// Entries for the 30 days starting at `start` (Unix µs, a UTC midnight).
    static func entries(start: Int64, days: Int = 30) -> [LedgerEntry] {
        var random = SplitMix(seed: 42)
        var entries: [LedgerEntry] = []
        let hour: Int64 = 3_600_000_000
        for day in 0..<days {
            let weekend = day % 7 >= 5  // day 0 is a Monday in the tests
            for (u, user) in users.enumerated() {
                let calls = weekend ? Int(random.next(2)) : user.appetite * (4 + Int(random.next(6)))
                for _ in 0..<calls {
                    let model = models[(u + Int(random.next(7))) % models.count]
                    let started = start + Int64(day) * 24 * hour + (8 + Int64(random.next(10))) * hour
                        + Int64(random.next(3_600_000_000))
                    let input = 300 + Int(random.next(4_000)), output = 50 + Int(random.next(900))
                    let roll = random.next(100)
                    let outcome: Outcome = roll < 2 ? .upstreamError : roll < 4 ? .refusedRate : .ok
                    let paid = outcome == .ok
                    let latency = (model.latency * (60 + Int64(random.next(120))) / 100) * 1_000
                    let ttft = (model.ttft * (70 + Int64(random.next(80))) / 100) * 1_000
                    let cost = paid ? Money(picodollars: Int64(input) * model.input + Int64(output) * model.output) : .zero
                    let body = Int64(random.next(1 << 40))
                    entries.append(LedgerEntry(
                        id: "rl-\(entries.count)", requestId: "req-\(entries.count)", startedAt: started,
                        firstByteAt: paid ? started + ttft : nil, endedAt: started + (outcome.isRefusal ? 300 : latency),
                        user: user.name, team: user.team, dialect: .openai, route: "chat.completions",
                        provider: model.name.hasPrefix("claude") ? "anthropic" : "openai", modelRequested: model.name,
                        modelServed: paid ? model.name : nil, stream: true, status: paid ? 200 : (outcome.isRefusal ? 429 : 502),
                        outcome: outcome, usage: paid ? Usage(inputTokens: input, outputTokens: output) : .zero,
                        usageSource: .provider, cost: cost, ttftMicros: paid ? ttft : nil, requestHash: body))
                    // One call in twelve is regenerated within a minute: a retry with the same body.
                    if paid, random.next(12) == 0 {
                        var retry = entries[entries.count - 1]
                        retry.id += "-again"
                        retry.requestId += "-again"
                        let shift = Int64(5 + random.next(55)) * 1_000_000
                        retry.startedAt += shift
                        retry.endedAt += shift
                        retry.firstByteAt = retry.firstByteAt.map { $0 + shift }
                        entries.append(retry)
                    }
                }
            }
        }
        return entries.sorted { $0.startedAt < $1.startedAt }
    }
}

/// A small deterministic generator (SplitMix64), so fixtures do not change between runs.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    /// A value in `0..<bound`.
    mutating func next(_ bound: UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return (z ^ (z >> 31)) % bound
    }
}
