import Foundation
import Testing
@testable import Policy

/// Unix µs of an ISO 8601 UTC timestamp, for readable expectations.
func utc(_ text: String) -> Int64 {
    let formatter = ISO8601DateFormatter()
    guard let date = formatter.date(from: text) else { fatalError("bad timestamp \(text)") }
    return Int64(date.timeIntervalSince1970) * 1_000_000
}

@Suite struct CalendarPeriodTests {
    static let berlin = TimeZone(identifier: "Europe/Berlin")!
    static let newYork = TimeZone(identifier: "America/New_York")!
    static let utcZone = TimeZone(identifier: "UTC")!

    func interval(_ period: BudgetPeriod, _ instant: Int64, _ zone: TimeZone) -> PeriodInterval {
        CalendarPeriod(timeZone: zone).interval(of: period, containing: instant)
    }

    @Test func aDayIsLocalMidnightToMidnight() {
        #expect(interval(.day, utc("2026-06-15T12:34:56Z"), Self.utcZone)
                == PeriodInterval(start: utc("2026-06-15T00:00:00Z"), end: utc("2026-06-16T00:00:00Z")))
        // 23:30 UTC is already the next day in Berlin (CEST, +2).
        #expect(interval(.day, utc("2026-06-15T23:30:00Z"), Self.berlin)
                == PeriodInterval(start: utc("2026-06-15T22:00:00Z"), end: utc("2026-06-16T22:00:00Z")))
    }

    @Test func boundariesBelongToThePeriodTheyStart() {
        let midnight = utc("2026-06-16T00:00:00Z")
        #expect(interval(.day, midnight, Self.utcZone).start == midnight)
        #expect(interval(.day, midnight - 1, Self.utcZone).end == midnight)
        #expect(interval(.day, midnight - 1, Self.utcZone).start == utc("2026-06-15T00:00:00Z"))
        let month = utc("2026-12-01T00:00:00Z")
        #expect(interval(.month, month, Self.utcZone).start == month)
        #expect(interval(.month, month - 1, Self.utcZone)
                == PeriodInterval(start: utc("2026-11-01T00:00:00Z"), end: month))
    }

    @Test func berlinSpringForwardDayHas23Hours() {
        // 2026-03-29: clocks jump 02:00 CET → 03:00 CEST.
        let day = interval(.day, utc("2026-03-29T10:00:00Z"), Self.berlin)
        #expect(day == PeriodInterval(start: utc("2026-03-28T23:00:00Z"), end: utc("2026-03-29T22:00:00Z")))
        #expect(day.end - day.start == 23 * 3_600_000_000)
        // Just before and after the jump: the same day.
        #expect(interval(.day, utc("2026-03-29T00:59:59Z"), Self.berlin) == day)
        #expect(interval(.day, utc("2026-03-29T01:00:00Z"), Self.berlin) == day)
        // The ISO week (Monday 23 March to Monday 30 March) is 7 days less an hour.
        let week = interval(.week, utc("2026-03-29T21:59:59Z"), Self.berlin)
        #expect(week == PeriodInterval(start: utc("2026-03-22T23:00:00Z"), end: utc("2026-03-29T22:00:00Z")))
        #expect(interval(.week, utc("2026-03-29T22:00:00Z"), Self.berlin).start == utc("2026-03-29T22:00:00Z"))
        // March starts in CET and ends in CEST.
        #expect(interval(.month, utc("2026-03-29T10:00:00Z"), Self.berlin)
                == PeriodInterval(start: utc("2026-02-28T23:00:00Z"), end: utc("2026-03-31T22:00:00Z")))
    }

    @Test func newYorkDaysAcrossBothChanges() {
        let spring = interval(.day, utc("2026-03-08T12:00:00Z"), Self.newYork)
        #expect(spring == PeriodInterval(start: utc("2026-03-08T05:00:00Z"), end: utc("2026-03-09T04:00:00Z")))
        let fall = interval(.day, utc("2026-11-01T12:00:00Z"), Self.newYork)
        #expect(fall == PeriodInterval(start: utc("2026-11-01T04:00:00Z"), end: utc("2026-11-02T05:00:00Z")))
        #expect(fall.end - fall.start == 25 * 3_600_000_000)
        // 01:30 happens twice on that day; both belong to it.
        #expect(interval(.day, utc("2026-11-01T05:30:00Z"), Self.newYork) == fall)
        #expect(interval(.day, utc("2026-11-01T06:30:00Z"), Self.newYork) == fall)
    }

    @Test func weeksStartOnMondayAndCrossYears() {
        // 2026-01-01 is a Thursday: its week began on Monday 2025-12-29.
        #expect(interval(.week, utc("2026-01-01T12:00:00Z"), Self.utcZone)
                == PeriodInterval(start: utc("2025-12-29T00:00:00Z"), end: utc("2026-01-05T00:00:00Z")))
        // A Sunday belongs to the week that began six days before.
        #expect(interval(.week, utc("2026-06-21T23:59:59Z"), Self.utcZone).start == utc("2026-06-15T00:00:00Z"))
        #expect(interval(.week, utc("2026-06-22T00:00:00Z"), Self.utcZone).start == utc("2026-06-22T00:00:00Z"))
    }

    @Test func monthEnds() {
        #expect(interval(.month, utc("2024-02-29T23:59:59Z"), Self.utcZone)
                == PeriodInterval(start: utc("2024-02-01T00:00:00Z"), end: utc("2024-03-01T00:00:00Z")))
        #expect(interval(.month, utc("2026-02-15T00:00:00Z"), Self.utcZone).end == utc("2026-03-01T00:00:00Z"))
        #expect(interval(.month, utc("2026-12-31T23:59:59Z") + 999_999, Self.utcZone)
                == PeriodInterval(start: utc("2026-12-01T00:00:00Z"), end: utc("2027-01-01T00:00:00Z")))
        // New York's November: EDT at the start, EST at the end.
        #expect(interval(.month, utc("2026-11-15T00:00:00Z"), Self.newYork)
                == PeriodInterval(start: utc("2026-11-01T04:00:00Z"), end: utc("2026-12-01T05:00:00Z")))
    }

    @Test func everyInstantOfAYearIsInExactlyOneDay() {
        let calendar = CalendarPeriod(timeZone: Self.berlin)
        var instant = utc("2026-01-01T00:00:00Z")
        var previous = calendar.interval(of: .day, containing: instant)
        var days = 1
        while instant < utc("2027-01-01T00:00:00Z") {
            instant += 3_600_000_000  // hourly
            let day = calendar.interval(of: .day, containing: instant)
            #expect(day.contains(instant))
            if day != previous {
                #expect(day.start == previous.end)
                days += 1
                previous = day
            }
        }
        #expect(days == 366)  // 2026-01-01 through 2027-01-01 (the loop ends at 01:00 that day, Berlin time)
    }
}
