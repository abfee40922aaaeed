import Foundation
import Metering
import Testing
@testable import Ledger

/// A fresh directory per test, removed when the value is dropped.
final class TemporaryDirectory: @unchecked Sendable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String = "ledger.sqlite") -> String { url.appendingPathComponent(name).path }
}

/// State shared with writer callbacks, guarded by a lock.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    var current: Value { withLock { $0 } }
}

let day0: Int64 = 1_735_689_600 * 1_000_000  // 2025-01-01T00:00:00Z in µs

let gpt4oMini = ModelPrice(model: ModelPattern("gpt-4o-mini"), effectiveFrom: Day("2024-07-18")!,
                           input: ModelPrice.perToken(fromPerMillion: "0.15")!,
                           cachedInput: ModelPrice.perToken(fromPerMillion: "0.075")!,
                           cacheWrite: .zero,
                           output: ModelPrice.perToken(fromPerMillion: "0.60")!)

func sampleEntry(_ n: Int, startedAt: Int64? = nil, latency: Int64 = 1_000, user: String? = "alice",
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

/// Appends entries and waits until all are committed; returns the failures, if any.
@discardableResult
func appendAll(_ entries: [LedgerEntry], to writer: LedgerWriter) -> [LedgerError] {
    let failures = Locked<[LedgerError]>([])
    for entry in entries {
        writer.append(entry) { result in
            if case .failure(let error) = result { failures.withLock { $0.append(error) } }
        }
    }
    writer.flush()
    return failures.current
}

/// Records an issue unless `result` is the failure a closed writer gives.
func expectClosed(_ result: Result<Void, LedgerError>?, sourceLocation: SourceLocation = #_sourceLocation) {
    guard case .failure(.closed) = result else {
        Issue.record("expected .closed, got \(String(describing: result))", sourceLocation: sourceLocation)
        return
    }
}

extension CallRow {
    /// The INSERT of a ledger before v5 (no retry column), for the tests that migrate one.
    static let v4InsertSQL = "INSERT INTO calls (\(selectList)) VALUES (" +
        columns.indices.map { "?\($0 + 1)" }.joined(separator: ", ") + ")"
}
