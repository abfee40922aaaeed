import Testing
@testable import Metering

@Suite struct MoneyTests {
    @Test func parsesDecimalDollarsExactly() {
        #expect(Money(dollars: "0.50")?.picodollars == 500_000_000_000)
        #expect(Money(dollars: "20")?.picodollars == 20_000_000_000_000)
        #expect(Money(dollars: "5000.000001")?.picodollars == 5_000_000_001_000_000)
        #expect(Money(dollars: "0.000000000001")?.picodollars == 1)
        #expect(Money(dollars: "007.5")?.picodollars == 7_500_000_000_000)
        #expect(Money(dollars: "9223372.036854775807")?.picodollars == Int64.max)
    }

    @Test(arguments: ["", ".5", "1.", "-1", "+1", "1e3", "1,000", " 1", "1 ", "0.0000000000001", "1.2.3",
                      "9223372.036854775808", "9223373", "١٢", "½"])
    func rejectsAnythingElse(_ text: String) {
        #expect(Money(dollars: text) == nil)
    }

    @Test func formatsRoundingHalfAwayFromZero() {
        let m = Money(picodollars: 1_234_567_890_123)
        #expect(m.formatted() == "1.234568")
        #expect(m.formatted(decimals: 2) == "1.23")
        #expect(m.formatted(decimals: 12) == "1.234567890123")
        #expect(m.formatted(decimals: 0) == "1")
        #expect(m.description == "$1.234568")
        #expect(Money(picodollars: 500_000).formatted() == "0.000001")
        #expect(Money(picodollars: 499_999).formatted() == "0.000000")
        #expect(Money(picodollars: -1_500_000).formatted() == "-0.000002")
        #expect(Money(picodollars: -1).formatted() == "0.000000")
        #expect(Money(picodollars: Int64.min).formatted(decimals: 12) == "-9223372.036854775808")
        #expect(Money(picodollars: 5_000_000_000).formatted(decimals: 2) == "0.01")
    }

    @Test func totalsDoNotOverflow() {
        var total = Money.Total()
        for _ in 0..<4 { total.add(Money(picodollars: Int64.max)) }
        #expect(total.picodollars == Int128(Int64.max) * 4)
        #expect(total.formatted(decimals: 2) == "36893488.15")
    }

    @Test func perTokenPriceFromPerMillion() {
        #expect(ModelPrice.perToken(fromPerMillion: "0.075")?.picodollars == 75_000)
        #expect(ModelPrice.perToken(fromPerMillion: "3.75")?.picodollars == 3_750_000)
        #expect(ModelPrice.perToken(fromPerMillion: "15")?.picodollars == 15_000_000)
        #expect(ModelPrice.perToken(fromPerMillion: "0.000001")?.picodollars == 1)
        #expect(ModelPrice.perToken(fromPerMillion: "0.0000001") == nil)
        #expect(ModelPrice.perToken(fromPerMillion: "$1") == nil)
    }
}

@Suite struct DayTests {
    @Test func parsesCalendarDays() {
        #expect(Day("1970-01-01")?.daysSinceEpoch == 0)
        #expect(Day("2000-03-01")?.daysSinceEpoch == 11017)
        #expect(Day("2024-02-29")?.daysSinceEpoch == 19782)
        #expect(Day("0001-01-01")?.daysSinceEpoch == -719_162)
        #expect(Day("9999-12-31")?.daysSinceEpoch == 2_932_896)
        #expect(Day("2000-02-29") != nil)
    }

    @Test(arguments: ["2023-02-29", "1900-02-29", "2024-13-01", "2024-00-10", "2024-04-31", "2024-1-01",
                      "2024--01-01", "+202-01-01", "2024-01-+1", "abcd-01-01", "2024-01-01T00:00", "", "2024-01"])
    func rejectsInvalidDays(_ text: String) {
        #expect(Day(text) == nil)
    }

    @Test func roundTripsEveryFourDigitYear() {
        // One expectation for the 522,580 days, not one each (10 s of a debug test run).
        let first = stride(from: -719_162, through: 2_932_896, by: 7).lazy.map(Day.init(daysSinceEpoch:))
            .first { Day($0.description) != $0 }
        #expect(first == nil, "\(first.map { "\($0.daysSinceEpoch) reads back as \(Day($0.description).map(String.init(describing:)) ?? "nothing")" } ?? "")")
    }

    @Test func unixSecondsFloorToTheDay() {
        #expect(Day(unixSeconds: 0).description == "1970-01-01")
        #expect(Day(unixSeconds: 86_399).daysSinceEpoch == 0)
        #expect(Day(unixSeconds: 86_400).daysSinceEpoch == 1)
        #expect(Day(unixSeconds: -1).description == "1969-12-31")
        #expect(Day(unixSeconds: -86_400).daysSinceEpoch == -1)
        #expect(Day(unixSeconds: -86_401).daysSinceEpoch == -2)
        #expect(Day(unixSeconds: 1_709_164_800).description == "2024-02-29")
        #expect(Day("2024-02-29")!.unixSeconds == 1_709_164_800)
    }
}
