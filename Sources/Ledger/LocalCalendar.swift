import Foundation
import Metering

/// Days, weeks (Monday start) and months of a time zone, with DST: a local day is whatever span
/// of instants has that local date (23, 24 or 25 hours). Days are numbered like `Day`, from the
/// local date (1970-01-01 is 0), so `Day(daysSinceEpoch:)` prints the label.
struct LocalCalendar {
    let timeZone: TimeZone
    private let calendar: Calendar
    /// UTC offsets by quarter hour, computed once each (Foundation's lookup is slow per row).
    private var offsets: [Int64: Int64] = [:]

    init(timeZone: TimeZone) {
        self.timeZone = timeZone
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        self.calendar = calendar
    }

    /// Offset from UTC (µs) at an instant; cached per quarter hour when it is the same at the
    /// quarter's first and last second (zones change offsets on quarter hours in practice).
    mutating func offset(at micros: Int64) -> Int64 {
        let quarter = floorDiv(micros, RollupSpan.quarterMicros)
        if let known = offsets[quarter] { return known }
        let first = quarter * RollupSpan.quarterMicros
        let atFirst = exactOffset(at: first)
        guard atFirst == exactOffset(at: first + RollupSpan.quarterMicros - 1) else { return exactOffset(at: micros) }
        offsets[quarter] = atFirst
        return atFirst
    }

    private func exactOffset(at micros: Int64) -> Int64 {
        let seconds = Double(floorDiv(micros, 1_000_000))
        return Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: seconds))) * 1_000_000
    }

    mutating func localDay(of micros: Int64) -> Int {
        Int(floorDiv(micros + offset(at: micros), UnixTime.microsPerDay))
    }

    /// The first instant (µs) of a local day (after a DST gap at midnight, the first that exists).
    func start(ofLocalDay day: Int) -> Int64 {
        let (y, m, d) = Self.civil(day)
        let noon = calendar.date(from: DateComponents(year: y, month: m, day: d, hour: 12))!
        let start = calendar.startOfDay(for: noon)
        return Int64((start.timeIntervalSince1970 * 1_000_000).rounded())
    }

    static func weekStart(of day: Int) -> Int {
        // 1970-01-01 was a Thursday: Monday is 3 days before it.
        day - Int(floorMod(Int64(day + 3), 7))
    }

    static func monthStart(of day: Int) -> Int { day - civil(day).2 + 1 }

    static func monthLabel(of day: Int) -> String { String(Day(daysSinceEpoch: day).description.prefix(7)) }

    static func civil(_ day: Int) -> (Int, Int, Int) {
        let parts = Day(daysSinceEpoch: day).description.split(separator: "-").compactMap { Int($0) }
        return (parts[0], parts[1], parts[2])
    }

    /// The local days the 96 quarter hours of a UTC day fall in, as quarter masks (bits 0..<48 in
    /// `low`, 48..<96 in `high`, like rollup cells). Exact when `localDaysStartOnQuarterHours`.
    mutating func quarterDays(ofUTCDay utcDay: Int64) -> [(day: Int, low: Int64, high: Int64)] {
        var result: [(day: Int, low: Int64, high: Int64)] = []
        for q in 0..<96 {
            let day = localDay(of: utcDay * UnixTime.microsPerDay + Int64(q) * RollupSpan.quarterMicros)
            if result.last?.day != day { result.append((day, 0, 0)) }
            if q < 48 { result[result.count - 1].low |= 1 << Int64(q) }
            else { result[result.count - 1].high |= 1 << Int64(q - 48) }
        }
        return result
    }

    /// Whether every local midnight in `[since, until)` falls on a UTC quarter hour, so that
    /// quarter-hour rollup presence tells local days apart: the offset is a multiple of 15 min
    /// at `since` and after every transition, and transitions happen on quarter hours.
    mutating func localDaysStartOnQuarterHours(since: Int64, until: Int64) -> Bool {
        var instant = since
        while true {
            if floorMod(offset(at: instant), RollupSpan.quarterMicros) != 0 { return false }
            let date = Date(timeIntervalSince1970: Double(floorDiv(instant, 1_000_000)))
            guard let next = timeZone.nextDaylightSavingTimeTransition(after: date) else { return true }
            let micros = Int64(next.timeIntervalSince1970 * 1_000_000)
            if micros >= until || micros <= instant { return true }
            if floorMod(micros, RollupSpan.quarterMicros) != 0 { return false }
            instant = micros
        }
    }
}

func floorMod(_ a: Int64, _ b: Int64) -> Int64 { a - floorDiv(a, b) * b }
