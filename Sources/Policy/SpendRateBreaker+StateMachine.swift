/// Org-wide spend over the last hour in 60 one-minute buckets: pure, time passed in.
///
/// The window at `now` is the current minute (so far) and the 59 minutes before it, i.e.
/// between 59 and 60 minutes of history. A minute's spend leaves the window when the minute
/// 60 minutes after it begins.
struct SpendRateWindow: Sendable {
    static let minute: Int64 = 60_000_000
    static let slots = 60

    struct Slot: Sendable, Hashable {
        var minute: Int64 = .min
        var picodollars: Int128 = 0
    }

    /// Slot `m mod 60` holds minute `m` (or an older minute, which counts as empty).
    private(set) var slots = [Slot](repeating: Slot(), count: SpendRateWindow.slots)

    static func minute(of instant: Int64) -> Int64 {
        instant >= 0 ? instant / minute : (instant - minute + 1) / minute
    }

    private static func index(of minute: Int64) -> Int {
        Int(((minute % Int64(slots)) + Int64(slots)) % Int64(slots))
    }

    mutating func record(_ picodollars: Int64, now: Int64) {
        guard picodollars > 0 else { return }
        let minute = Self.minute(of: now)
        let index = Self.index(of: minute)
        if slots[index].minute < minute {
            slots[index] = Slot(minute: minute, picodollars: 0)
        } else if slots[index].minute > minute {
            return  // over an hour late: already out of every window to come
        }
        slots[index].picodollars += Int128(picodollars)
    }

    /// Spend in the window at `now`.
    func total(now: Int64) -> Int128 {
        let current = Self.minute(of: now)
        var sum: Int128 = 0
        for slot in slots where slot.minute <= current && slot.minute > current - Int64(Self.slots) {
            sum += slot.picodollars
        }
        return sum
    }

    /// Whether the last hour's spend has reached `limit`, and if so, how long until enough of it
    /// leaves the window to fall below `limit` again (with no further spend).
    func check(limit: Int64, now: Int64) -> (tripped: Bool, retryAfterMicros: Int64) {
        var sum = total(now: now)
        guard sum >= Int128(limit) else { return (false, 0) }
        let current = Self.minute(of: now)
        var minute = current - Int64(Self.slots) + 1
        while minute <= current {
            let slot = slots[Self.index(of: minute)]
            if slot.minute == minute { sum -= slot.picodollars }
            if sum < Int128(limit) { break }
            minute += 1
        }
        // Minute `m` leaves the window at the start of minute `m + 60`. With a limit of 0 the
        // window never falls below it; the answer is then one full window.
        let leaves = (min(minute, current) + Int64(Self.slots)) * Self.minute
        return (true, max(1, leaves - now))
    }
}
