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

    /// Spend is read from the rollup cells, raw rows only at a ragged first hour and for calls
    /// not yet rolled up: it must equal grouping the raw rows, whatever the moment.
    @Test("spend from the cells equals the raw rows' sums, for moments on and off the hour, with calls not yet rolled up")
    func cellsMatchRawRows() throws {
        let dir = try TemporaryDirectory()
        let hour: Int64 = 3_600_000_000
        let users: [String?] = ["alice", "bob", nil, "carol"]
        let teams: [String?] = ["research", nil, "support"]
        func entries(_ range: Range<Int>) -> [LedgerEntry] {
            range.map { n in
                // Spread over three UTC days, at minutes that fall on and off quarter hours.
                let startedAt = day0 + Int64(n) * 7 * 60_000_000 + Int64(n % 13) * 1_000_003
                // carol only ever gets refused: she spent nothing and is not a payer.
                let user = users[n % users.count]
                let refused = user == "carol" || n % 11 == 0
                return sampleEntry(n, startedAt: startedAt, user: user, team: teams[n % teams.count],
                                   outcome: refused ? .refusedRate : (n % 7 == 0 ? .upstreamError : .ok),
                                   usage: refused ? .zero : Usage(inputTokens: n, cachedInputTokens: n % 5,
                                                                  cacheWriteTokens: n % 3, outputTokens: 2 * n),
                                   cost: refused ? .zero : Money(picodollars: Int64(1_000 + n)))
            }
        }
        let rolled = try LedgerWriter(path: dir.path())
        #expect(appendAll(entries(0..<500), to: rolled).isEmpty)
        rolled.close()
        // The next calls stay in the tail: the writer rolls them up only after an hour.
        var options = LedgerWriter.Options()
        options.rollupFlushInterval = .seconds(3_600)
        let tail = try LedgerWriter(path: dir.path(), options: options)
        defer { tail.close() }
        #expect(appendAll(entries(500..<620), to: tail).isEmpty)
        tail.flush()

        let reader = try LedgerReader(path: dir.path())
        defer { reader.close() }
        let raw = try SQLiteConnection(path: dir.path())
        #expect(try raw.scalarInt("SELECT value FROM meta WHERE name = 'rollups_through'") == 500)
        func rawSpend(since: Int64) throws -> Set<PayerSpend> {
            let s = try raw.prepare("""
                SELECT user, team, SUM(cost_pd), SUM(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens)
                FROM calls WHERE started_at >= ?1 GROUP BY user, team
                HAVING SUM(outcome NOT LIKE 'refused\\_%' ESCAPE '\\') > 0
                """)
            s.bind(since, at: 1)
            var rows = Set<PayerSpend>()
            while try s.step() {
                rows.insert(PayerSpend(user: s.optionalString(at: 0), team: s.optionalString(at: 1),
                                       cost: Money.Total(picodollars: Int128(s.int64(at: 2))), tokens: s.int(at: 3)))
            }
            return rows
        }
        let moments: [Int64] = [day0 - hour, day0, day0 + 5 * hour, day0 + 5 * hour + 45 * 60_000_000,
                                day0 + 30 * hour + 1, day0 + 2 * 24 * hour - 30 * 60_000_000,
                                day0 + 70 * hour + 17, day0 + 100 * hour]
        for since in moments {
            let expected = try rawSpend(since: since)
            #expect(Set(try reader.spend(since: since)) == expected, "since \(since - day0) µs past day0")
            #expect(!expected.contains { $0.user == "carol" })
        }
        #expect(try rawSpend(since: day0 + 70 * hour + 17).count > 0, "the tail alone has payers")
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
