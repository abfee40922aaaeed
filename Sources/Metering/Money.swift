/// An exact amount of US dollars in pico-dollars (1 USD = 10^12 pd).
///
/// Why pico: prices are quoted per 1M tokens with up to six decimals; at this unit such a
/// price is an exact integer per token ($0.075 / 1M = 75,000 pd per token), so a call's cost
/// is exact integer arithmetic. `Int64` bounds one amount at ±$9,223,372.036854775807;
/// sums across many rows are taken in `Int128` (see `Money.Total`).
public struct Money: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var picodollars: Int64

    public static let picosPerDollar: Int64 = 1_000_000_000_000
    public static let zero = Money(picodollars: 0)

    public init(picodollars: Int64) { self.picodollars = picodollars }

    public static func < (a: Money, b: Money) -> Bool { a.picodollars < b.picodollars }

    /// Parses a non-negative decimal dollar string ("0.50", "20", "5000.000001") exactly.
    /// Returns nil for anything that is not a plain decimal or has more than 12 decimals.
    public init?(dollars text: String) {
        guard let picos = Money.parseDecimal(text, scale: 12) else { return nil }
        self.picodollars = picos
    }

    /// Parses a decimal string scaled by 10^scale into an exact integer, or nil.
    static func parseDecimal(_ text: String, scale: Int) -> Int64? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2 else { return nil }
        let whole = parts[0]
        let fraction = parts.count == 2 ? parts[1] : ""
        guard !whole.isEmpty, whole.allSatisfy({ $0.isASCII && $0.isNumber }),
              fraction.allSatisfy({ $0.isASCII && $0.isNumber }),
              parts.count == 1 || !fraction.isEmpty,
              fraction.count <= scale else { return nil }
        var value: Int64 = 0
        for digit in whole + fraction + String(repeating: "0", count: scale - fraction.count) {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(digit.wholeNumberValue!))
            if o1 || o2 { return nil }
            value = s
        }
        return value
    }

    /// Dollars with `decimals` fraction digits, rounded half away from zero (display only).
    public func formatted(decimals: Int = 6) -> String {
        Money.format(Int128(picodollars), decimals: decimals)
    }

    public var description: String { "$" + formatted() }

    /// `$` and at least cents, with as many more decimals as the amount has up to micro-dollars
    /// (the budget headers' precision), so a limit like $0.005 reads as configured; below a
    /// micro-dollar, exact. For messages.
    public var dollarsText: String {
        let micros = formatted(decimals: 6)
        var text = micros == "0.000000" && self != .zero ? formatted(decimals: 12) : micros
        while text.hasSuffix("0"), let dot = text.firstIndex(of: "."), text[dot...].count > 3 { text.removeLast() }
        return "$" + text
    }

    static func format(_ picos: Int128, decimals: Int) -> String {
        precondition(decimals >= 0 && decimals <= 12)
        let negative = picos < 0
        var magnitude = negative ? -picos : picos
        var divisor: Int128 = 1
        for _ in 0..<(12 - decimals) { divisor *= 10 }
        magnitude = (magnitude + divisor / 2) / divisor
        var unit: Int128 = 1
        for _ in 0..<decimals { unit *= 10 }
        let whole = magnitude / unit
        let fraction = magnitude % unit
        var text = String(whole)
        if decimals > 0 {
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: decimals - digits.count) + digits
        }
        return (negative && magnitude != 0 ? "-" : "") + text
    }

    /// A running sum of many amounts; 128 bits, so a ledger cannot overflow it.
    public struct Total: Sendable, Hashable, Codable {
        public var picodollars: Int128 = 0
        public init() {}
        public init(picodollars: Int128) { self.picodollars = picodollars }
        public mutating func add(_ m: Money) { picodollars += Int128(m.picodollars) }
        public func formatted(decimals: Int = 6) -> String { Money.format(picodollars, decimals: decimals) }
    }
}
