import Foundation
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

    @Test("nonsense is refused with the accepted forms", arguments: [
        "yesterday", "2026-13", "7x", "2026-11-31", "-3d", "2026-12-06T01:00:00 garbage", "2026-12-06T01:00:00Zjunk",
        "2026-12-06T24:00:00Z", "2026-12-06T01:00:00.Z", "2026-12-06T01Z", "2026-12-06T01:00:00+5",
    ])
    func invalid(text: String) {
        #expect(throws: ReportPeriod.InvalidPeriod.self) {
            _ = try ReportPeriod.range(since: text, until: nil, period: text.count == 7 ? text : nil, now: now)
        }
    }

    /// `export` writes microseconds: resuming from a row's start must not include that row again.
    @Test("date-times are read to the microsecond, with any offset form")
    func microseconds() throws {
        let base = micros("2026-12-06") + 6 * 3_600_000_000 + 51 * 60_000_000 + 24_000_000
        #expect(try ReportPeriod.parseInstant("2026-12-06T06:51:24.395838Z", now: now) == base + 395_838)
        #expect(try ReportPeriod.parseInstant("2026-12-06T06:51:24.3958389Z", now: now) == base + 395_838)
        #expect(try ReportPeriod.parseInstant("2026-12-06T06:51:24.4Z", now: now) == base + 400_000)
        #expect(try ReportPeriod.parseInstant("2026-12-06t06:51:24z", now: now) == base)
        #expect(try ReportPeriod.parseInstant("2026-12-06T08:21:24+0130", now: now) == base)
        #expect(try ReportPeriod.parseInstant("2026-12-06T01:51:24-05:00", now: now) == base)
        #expect(try ReportPeriod.parseInstant("2026-12-06T06:51Z", now: now) == base - 24_000_000)
    }

    @Test("a bad --period is told what --period takes, a bad --since what an instant is",
          arguments: ["2026-13", "garbage", "2026-11-05"])
    func invalidPeriodNamesMonths(text: String) {
        do {
            _ = try ReportPeriod.range(since: nil, until: nil, period: text, now: now)
            Issue.record("'\(text)' was taken as a period")
        } catch {
            #expect("\(error)" == "'\(text)' is not a month (YYYY-MM, e.g. 2026-11) or last-month")
        }
        do {
            _ = try ReportPeriod.range(since: text, until: nil, period: nil, now: now)
            if text != "2026-11-05" { Issue.record("'\(text)' was taken as an instant") }
        } catch {
            #expect("\(error)".contains("is not a date (YYYY-MM-DD)"))
        }
    }

    @Test("in a zone: days, months, mtd and local date-times start at local midnight, across DST")
    func zoned() throws {
        let berlin = TimeZone(identifier: "Europe/Berlin")!
        let hour: Int64 = 3_600_000_000
        // November is CET (UTC+1): 2026-11-01 00:00 Berlin is 2026-10-31 23:00Z.
        #expect(try ReportPeriod.range(since: nil, until: nil, period: "2026-11", now: now, timeZone: berlin)
                == (micros("2026-11-01") - hour, micros("2026-12-01") - hour))
        // October starts in CEST (UTC+2) and ends in CET: 31 days and one hour long.
        let (from, to) = try ReportPeriod.range(since: nil, until: nil, period: "last-month", now: now, timeZone: berlin)
        #expect(from == micros("2026-10-01") - 2 * hour)
        #expect(to == micros("2026-11-01") - hour)
        #expect(to - from == 31 * 24 * hour + hour)
        #expect(try ReportPeriod.parseInstant("2026-03-29", now: now, timeZone: berlin) == micros("2026-03-29") - hour)
        #expect(try ReportPeriod.parseInstant("2026-03-30", now: now, timeZone: berlin) == micros("2026-03-30") - 2 * hour)
        #expect(try ReportPeriod.parseInstant("mtd", now: now, timeZone: berlin) == micros("2026-11-01") - hour)
        // A date-time without an offset is local; with one it is what it says.
        #expect(try ReportPeriod.parseInstant("2026-11-01T09:30:00", now: now, timeZone: berlin)
                == micros("2026-11-01") + 8 * hour + 30 * 60_000_000)
        #expect(try ReportPeriod.parseInstant("2026-11-01T09:30:00Z", now: now, timeZone: berlin)
                == micros("2026-11-01") + 9 * hour + 30 * 60_000_000)
        #expect(try ReportPeriod.parseInstant("2026-11-01T09:30:00.250+05:00", now: now, timeZone: berlin)
                == micros("2026-11-01") + 4 * hour + 30 * 60_000_000 + 250_000)
        // New York at 01:00Z on Nov 22 is still Nov 21: last month is October there too, but
        // "mtd" at 2026-11-01T02:00Z is still October in New York.
        let newYork = TimeZone(identifier: "America/New_York")!
        let early = micros("2026-11-01") + 2 * hour
        #expect(try ReportPeriod.parseInstant("mtd", now: early, timeZone: newYork) == micros("2026-10-01") + 4 * hour)
        // In UTC nothing changed.
        #expect(try ReportPeriod.parseInstant("2026-11-01T09:30:00", now: now) == micros("2026-11-01") + 9 * hour + 30 * 60_000_000)
    }
}
