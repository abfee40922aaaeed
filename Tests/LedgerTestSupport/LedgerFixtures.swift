import Foundation
import Ledger
import Metering

// Fixtures shared by the ledger's test targets (SQLite's and PostgreSQL's), so that both run on
// the same calls.

/// A fresh directory per test, removed when the value is dropped.
package final class TemporaryDirectory: @unchecked Sendable {
    package let url: URL

    package init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    package func path(_ name: String = "ledger.sqlite") -> String { url.appendingPathComponent(name).path }
}

/// State shared with writer callbacks, guarded by a lock.
package final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    package init(_ value: Value) { self.value = value }

    package func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    package var current: Value { withLock { $0 } }
}

/// 2025-01-01T00:00:00Z in µs: where `sampleEntry` puts call `n` unless told.
package let day0: Int64 = 1_735_689_600 * 1_000_000

package let gpt4oMini = ModelPrice(model: ModelPattern("gpt-4o-mini"), effectiveFrom: Day("2024-07-18")!,
                                   input: ModelPrice.perToken(fromPerMillion: "0.15")!,
                                   cachedInput: ModelPrice.perToken(fromPerMillion: "0.075")!,
                                   cacheWrite: .zero,
                                   output: ModelPrice.perToken(fromPerMillion: "0.60")!)

package func sampleEntry(_ n: Int, startedAt: Int64? = nil, latency: Int64 = 1_000, user: String? = "alice",
                         team: String? = "research", model: String? = "gpt-4o-mini", outcome: Outcome = .ok,
                         usage: Usage = Usage(inputTokens: 100, cachedInputTokens: 20, outputTokens: 50, reasoningTokens: 10),
                         cost: Money? = nil) -> LedgerEntry {
    let start = startedAt ?? day0 + Int64(n) * 1_000
    return LedgerEntry(
        id: "call-\(n)", requestId: "req-\(n)", startedAt: start, firstByteAt: start + latency / 2,
        endedAt: start + latency, keyId: "key-1", user: user, team: team, dialect: .openai,
        route: Endpoint.chatCompletions.rawValue, provider: "openai", modelRequested: model, modelServed: model,
        stream: n % 2 == 0, status: outcome == .ok ? 200 : 502, outcome: outcome, usage: usage,
        usageSource: .provider, cost: cost ?? gpt4oMini.cost(of: usage)!, price: gpt4oMini,
        ttftMicros: latency / 2, upstreamMicros: latency - 10, errorMessage: outcome == .ok ? nil : "boom")
}

/// Appends entries to any ledger and waits until all settled; returns the failures, if any.
@discardableResult
package func appendAll(_ entries: [LedgerEntry], to sink: any LedgerSink) -> [LedgerError] {
    let failures = Locked<[LedgerError]>([])
    for entry in entries {
        sink.append(entry) { result in
            if case .failure(let error) = result { failures.withLock { $0.append(error) } }
        }
    }
    sink.flush()
    return failures.current
}

/// 2025-10-24T00:00:00Z: the autumn calls span Berlin's (Oct 26) and New York's (Nov 2) DST ends.
package let autumnStart: Int64 = 1_761_264_000 * 1_000_000

/// Two weeks of calls every few minutes, five users (and refusals without one), three
/// models, errors, TTFTs on some calls, and ~30 % of calls repeating a user's previous body
/// 0-200 s later (some retries, some just past the window); every fifth call capped its output;
/// some made web or file searches.
package func autumnCalls(seed: UInt64 = 7, count: Int = 2_500) -> [LedgerEntry] {
    var rng = SplitMix(seed)
    let users: [(String?, String?)] = [("ana", "core"), ("ben", "core"), ("chen", "labs"), ("dia", nil), ("eve", "labs"), (nil, nil)]
    let models = ["gpt-4o-mini", "claude-3-5-haiku", "gpt-4o"]
    var last: [String: (Int64, Int64)] = [:]
    var entries: [LedgerEntry] = []
    for n in 0..<count {
        let (user, team) = users[Int.random(in: 0..<users.count, using: &rng)]
        var start = autumnStart + Int64(n) * 8 * 60_000_000 + Int64.random(in: 0..<480_000_000, using: &rng)
        var hash = Int64.random(in: 1...Int64.max, using: &rng)
        if let user, let previous = last[user], Int.random(in: 0..<10, using: &rng) < 3 {
            hash = previous.1
            start = previous.0 + Int64.random(in: 0...200_000_000, using: &rng)
        }
        let outcome: Outcome = user == nil ? .refusedAuth : (n % 13 == 0 ? .upstreamError : (n % 29 == 0 ? .refusedRate : .ok))
        // Log-uniform latencies from 10 µs to ~100 s, so every bucket range is exercised.
        let latency = Int64(pow(10, Double.random(in: 1...8, using: &rng)))
        var entry = sampleEntry(n, startedAt: start, latency: latency, user: user, team: team,
                                model: models[n % models.count], outcome: outcome,
                                cost: Money(picodollars: Int64.random(in: 0...9_000_000_000, using: &rng)))
        entry.requestHash = outcome == .refusedAuth ? nil : hash
        entry.ttftMicros = n % 4 == 0 || outcome.isRefusal ? nil : latency / 3
        entry.plan = team == nil ? nil : "pro"
        entry.keyId = user.map { "key-\($0)-\(n % 2)" }
        entry.provider = entry.modelServed!.hasPrefix("claude") ? "anthropic" : "openai"
        entry.outputCapRequested = n % 5 == 0 ? 512 : nil
        entry.outputCapApplied = n % 5 == 0 ? 256 : nil
        // Some calls searched (from n, not the generator: the calls' other values stay as they were).
        if !outcome.isRefusal {
            entry.usage.webSearches = n % 7 == 0 ? n % 3 + 1 : 0
            entry.usage.fileSearches = n % 11 == 0 ? 2 : 0
        }
        if let user { last[user] = (start, hash) }
        entries.append(entry)
    }
    return entries
}

/// A deterministic generator (SplitMix64), so fixtures are the same on every run.
package struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    package init(_ seed: UInt64) { state = seed }
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
