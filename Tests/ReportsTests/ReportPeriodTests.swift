import Ledger
import Metering
import Reports
import Testing

@Suite("report periods")
struct ReportPeriodTests {
    let now = Day("2026-11-22")!.unixSeconds * 1_000_000 + 3_600_000_000  // 2026-11-22T01:00Z

    private func micros(_ day: String) -> Int64 { Day(day)!.unixSeconds * 1_000_000 }

    @Test("a month, last month, month to date, days ago")
    func periods() throws {
        #expect(try ReportPeriod.range(since: nil, until: nil, period: "2026-02", now: now) == (micros("2026-02-01"), micros("2026-03-01")))
        #expect(try ReportPeriod.range(since: nil, until: nil, period: "2025-12", now: now) == (micros("2025-12-01"), micros("2026-01-01")))
        #expect(try ReportPeriod.range(since: nil, until: nil, period: "last-month", now: now) == (micros("2026-10-01"), micros("2026-11-01")))
        #expect(try ReportPeriod.parseInstant("mtd", now: now) == micros("2026-11-01"))
        #expect(try ReportPeriod.parseInstant("7d", now: now) == now - 7 * UnixTime.microsPerDay)
        #expect(try ReportPeriod.parseInstant("2026-11-01T09:30:00Z", now: now) == micros("2026-11-01") + 34_200_000_000)
        #expect(try ReportPeriod.range(since: "2026-11-01", until: nil, period: nil, now: now) == (micros("2026-11-01"), now + 1))
    }

    @Test("nonsense is refused with the accepted forms", arguments: ["yesterday", "2026-13", "7x", "2026-11-31", "-3d"])
    func invalid(text: String) {
        #expect(throws: ReportPeriod.InvalidPeriod.self) {
            _ = try ReportPeriod.range(since: text, until: nil, period: text.count == 7 ? text : nil, now: now)
        }
    }
}
