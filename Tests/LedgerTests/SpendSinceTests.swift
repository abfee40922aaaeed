import Metering
import Testing
@testable import Ledger
import LedgerTestSupport

@Suite("Spend since a moment (quota rebuild)")
struct SpendSinceTests {
    @Test("sums cost and tokens per user and team from a moment on, refusals left out")
    func spendPerPayer() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        let usage = Usage(inputTokens: 100, cachedInputTokens: 20, cacheWriteTokens: 5, outputTokens: 50)
        appendAll([
            sampleEntry(1, startedAt: day0 - 1, usage: usage),                       // before: not counted
            sampleEntry(2, startedAt: day0, usage: usage),
            sampleEntry(3, startedAt: day0 + 10, usage: usage, cost: Money(picodollars: 7)),
            sampleEntry(4, startedAt: day0 + 20, user: "bob", team: nil, usage: usage),
            sampleEntry(5, startedAt: day0 + 30, outcome: .refusedQuota, usage: .zero, cost: .zero),
            sampleEntry(6, startedAt: day0 + 40, outcome: .upstreamError, usage: usage, cost: Money(picodollars: 3)),
        ], to: writer)
        writer.close()

        let reader = try LedgerReader(path: dir.path())
        defer { reader.close() }
        let rows = try reader.spend(since: day0)
        let alice = try #require(rows.first { $0.user == "alice" })
        let bob = try #require(rows.first { $0.user == "bob" })
        let each = gpt4oMini.cost(of: usage)!.picodollars
        #expect(alice.team == "research")
        #expect(alice.cost.picodollars == Int128(each + 7 + 3))
        #expect(alice.tokens == 3 * 175)
        #expect(bob.team == nil && bob.cost.picodollars == Int128(each) && bob.tokens == 175)
        #expect(rows.count == 2)
    }

    @Test("plan and output caps round-trip (schema v3)")
    func planColumns() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        var entry = sampleEntry(1)
        entry.plan = "free"
        entry.outputCapRequested = 4_000
        entry.outputCapApplied = 512
        appendAll([entry], to: writer)
        writer.close()
        let reader = try LedgerReader(path: dir.path())
        defer { reader.close() }
        let back = try #require(try reader.entry(id: entry.id))
        #expect(back.plan == "free" && back.outputCapRequested == 4_000 && back.outputCapApplied == 512)
        #expect(back == entry)
    }

    @Test("spend per minute groups by the minute a call started in")
    func perMinute() throws {
        let dir = try TemporaryDirectory()
        let writer = try LedgerWriter(path: dir.path())
        appendAll([
            sampleEntry(1, startedAt: day0 + 1_000, cost: Money(picodollars: 5)),
            sampleEntry(2, startedAt: day0 + 59_000_000, cost: Money(picodollars: 7)),
            sampleEntry(3, startedAt: day0 + 61_000_000, cost: Money(picodollars: 11)),
            sampleEntry(4, startedAt: day0 + 62_000_000, outcome: .refusedRate, cost: .zero),
        ], to: writer)
        writer.close()
        let reader = try LedgerReader(path: dir.path())
        defer { reader.close() }
        let minutes = try reader.spendPerMinute(since: day0)
        #expect(minutes.map(\.minute) == [day0, day0 + 60_000_000])
        #expect(minutes.map(\.cost.picodollars) == [Int128(12), Int128(11)])
    }
}
