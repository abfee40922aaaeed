import Foundation
import Ledger
import Metering
import Policy

/// A fresh directory per test, removed when the value is dropped.
final class TemporaryDirectory: @unchecked Sendable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("reports-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    var ledgerPath: String { url.appendingPathComponent("ledger.sqlite").path }
}

let day0: Int64 = 1_735_689_600 * 1_000_000  // 2025-01-01T00:00:00Z in µs

/// Users whose names need quoting or escaping in every format.
let awkwardUsers: [String?] = ["alice", "o'brien, \"the boss\"", "line\nbreak", "zoë", nil]

/// Writes a varied set of calls through `LedgerWriter` and returns a reader on them.
func populatedLedger(in dir: TemporaryDirectory, calls: Int = 300) throws -> LedgerReader {
    let writer = try LedgerWriter(path: dir.ledgerPath)
    let failures = LockedCount()
    for n in 0..<calls {
        let user = awkwardUsers[n % awkwardUsers.count]
        let outcome: Outcome = user == nil ? .refusedAuth : (n % 11 == 0 ? .upstreamError : .ok)
        let usage = outcome.isRefusal ? Usage.zero
            : Usage(inputTokens: 1_000 + n, cachedInputTokens: n, cacheWriteTokens: n % 4, outputTokens: 200 + n,
                    reasoningTokens: n % 9)
        let start = day0 + Int64(n % 3) * 86_400_000_000 + Int64(n) * 1_000
        let entry = LedgerEntry(
            id: "call-\(n)", requestId: "req-\(n)", startedAt: start, endedAt: start + Int64(n % 40) * 1_000 + 3,
            user: user, team: n % 2 == 0 ? "research" : nil, dialect: .openai, route: "chat.completions",
            modelRequested: n % 3 == 0 ? "claude-3-5-haiku" : "gpt-4o-mini", stream: false,
            status: outcome.isRefusal ? 401 : 200, outcome: outcome, usage: usage, usageSource: .provider,
            // Odd pico amounts, so that rounding to micro-dollars would show if it leaked into sums.
            cost: Money(picodollars: Int64(n) * 1_234_567_891 + 7))
        writer.append(entry) { result in
            if case .failure = result { failures.increment() }
        }
    }
    writer.close()
    precondition(failures.value == 0)
    return try LedgerReader(path: dir.ledgerPath)
}

final class LockedCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

/// A strict RFC 4180 parser (quoted fields, doubled quotes, CRLF records), to read our CSV back.
func parseCSV(_ text: String) throws -> [[String]] {
    struct Malformed: Error {}
    var records: [[String]] = []
    var record: [String] = []
    var field = ""
    var chars = Array(text.unicodeScalars)[...]
    var quotedField = false
    while let c = chars.popFirst() {
        if quotedField {
            if c == "\"" {
                if chars.first == "\"" { chars.removeFirst(); field.unicodeScalars.append("\"") } else { quotedField = false }
            } else {
                field.unicodeScalars.append(c)
            }
        } else if c == "\"" {
            guard field.isEmpty else { throw Malformed() }
            quotedField = true
        } else if c == "," {
            record.append(field); field = ""
        } else if c == "\r" {
            guard chars.popFirst() == "\n" else { throw Malformed() }
            record.append(field); field = ""
            records.append(record); record = []
        } else if c == "\n" {
            throw Malformed()  // bare LF outside quotes: not RFC 4180
        } else {
            field.unicodeScalars.append(c)
        }
    }
    guard !quotedField, field.isEmpty, record.isEmpty else { throw Malformed() }
    return records
}

/// Writes `entries` through `LedgerWriter` (rollups and retry flags included) and returns a reader.
func ledger(with entries: [LedgerEntry], in dir: TemporaryDirectory) throws -> LedgerReader {
    let writer = try LedgerWriter(path: dir.ledgerPath)
    let failures = LockedCount()
    for entry in entries {
        writer.append(entry) { result in
            if case .failure = result { failures.increment() }
        }
    }
    writer.close()
    precondition(failures.value == 0)
    return try LedgerReader(path: dir.ledgerPath)
}

/// A policy directory with one OpenAI-shaped provider for `gpt-*`, flat prices and `plans`.
func loadTestPolicy(plans: String) throws -> PolicySet {
    let dir = try TemporaryDirectory()
    try """
        providers:
          openai: { dialect: openai, base_url: "http://127.0.0.1:9/v1" }
        models:
          - { match: "gpt-*", provider: openai }
        """.write(to: dir.url.appendingPathComponent("providers.yaml"), atomically: true, encoding: .utf8)
    try """
        - { model: "gpt-*", effective_from: "2024-01-01", input: "1", output: "1" }
        """.write(to: dir.url.appendingPathComponent("prices.yaml"), atomically: true, encoding: .utf8)
    try plans.write(to: dir.url.appendingPathComponent("plans.yaml"), atomically: true, encoding: .utf8)
    return try PolicyLoader.load(directory: dir.url.path, environment: [:])
}
