import Metering
import Testing
@testable import Policy

@Suite struct SpendRateBreakerTests {
    static let t0: Int64 = 1_780_000_040_000_000  // 20 s into a minute
    static let minute: Int64 = 60_000_000
    static func dollars(_ text: String) -> Money { Money(dollars: text)! }

    @Test func tripsAtTheLimitAndReopensWhenTheSpendLeavesTheHour() {
        let breaker = SpendRateBreaker()
        let limit = Self.dollars("10")
        #expect(breaker.isTripped(limitPerHour: limit, now: Self.t0) == (false, 0))
        breaker.record(cost: Self.dollars("4"), now: Self.t0)
        breaker.record(cost: Self.dollars("5.99"), now: Self.t0 + 10 * Self.minute)
        #expect(breaker.isTripped(limitPerHour: limit, now: Self.t0 + 10 * Self.minute) == (false, 0))
        breaker.record(cost: Self.dollars("0.01"), now: Self.t0 + 20 * Self.minute)
        // $10 reached. The $4 of the first minute leaves at the start of minute 60 after it.
        let now = Self.t0 + 30 * Self.minute
        let firstMinute = Self.t0 - 20_000_000
        #expect(breaker.isTripped(limitPerHour: limit, now: now) == (true, firstMinute + 60 * Self.minute - now))
        #expect(breaker.isTripped(limitPerHour: limit, now: firstMinute + 60 * Self.minute - 1).tripped)
        #expect(breaker.isTripped(limitPerHour: limit, now: firstMinute + 60 * Self.minute) == (false, 0))
        #expect(breaker.spentLastHour(now: firstMinute + 60 * Self.minute) == Self.dollars("6"))
        #expect(breaker.isTripped(limitPerHour: nil, now: now) == (false, 0))
    }

    @Test func retryWaitsForEnoughOfTheHourToLeave() {
        let breaker = SpendRateBreaker()
        for m in Int64(0)..<60 { breaker.record(cost: Self.dollars("1"), now: Self.t0 + m * Self.minute) }
        // $60 in the hour, limit $55: six minutes' worth must leave, the last at minute 5 + 60.
        let now = Self.t0 + 59 * Self.minute
        let firstMinute = Self.t0 - 20_000_000
        #expect(breaker.isTripped(limitPerHour: Self.dollars("55"), now: now)
                == (true, firstMinute + 65 * Self.minute - now))
        // Spend in the current minute alone over the limit: a whole hour.
        let single = SpendRateBreaker()
        single.record(cost: Self.dollars("100"), now: Self.t0)
        #expect(single.isTripped(limitPerHour: Self.dollars("50"), now: Self.t0)
                == (true, firstMinute + 60 * Self.minute - Self.t0))
    }

    @Test func oldSlotsAreReusedAndLateRecordsIgnored() {
        let breaker = SpendRateBreaker()
        breaker.record(cost: Self.dollars("1"), now: Self.t0)
        breaker.record(cost: Self.dollars("2"), now: Self.t0 + 60 * Self.minute)  // same slot, an hour on
        #expect(breaker.spentLastHour(now: Self.t0 + 60 * Self.minute) == Self.dollars("2"))
        breaker.record(cost: Self.dollars("5"), now: Self.t0)  // an hour late: out of every window
        #expect(breaker.spentLastHour(now: Self.t0 + 60 * Self.minute) == Self.dollars("2"))
        #expect(breaker.spentLastHour(now: Self.t0 + 200 * Self.minute) == .zero)
    }
}
