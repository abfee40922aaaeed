/// A multiple of every token price (`ModelPrice.usOnlyMultiple`), exact to a millionth: "1.1" is
/// 1,100,000 millionths.
public struct PriceMultiplier: Sendable, Hashable, Codable, CustomStringConvertible {
    public let millionths: Int64

    public init(millionths: Int64) { self.millionths = millionths }

    /// A decimal with at most six decimals, over 0 and at most 10; nil otherwise.
    public init?(_ text: String) {
        guard let value = Money.parseDecimal(text, scale: 6), value > 0, value <= Self.largest else { return nil }
        millionths = value
    }

    /// The most a multiplier may be (a typo's "11" for "1.1" is refused rather than charged).
    public static let largest: Int64 = 10_000_000

    /// `price` times this multiple, rounded half up to a whole pico-dollar per token (exact for
    /// every price with at most five decimals per 1M tokens times "1.1"); saturates past the
    /// most one `Money` holds.
    public func applied(to price: Money) -> Money {
        let (product, overflow) = price.picodollars.multipliedReportingOverflow(by: millionths)
        guard !overflow else { return Money(picodollars: .max) }
        let (whole, rest) = product.quotientAndRemainder(dividingBy: 1_000_000)
        return Money(picodollars: whole + (rest >= 500_000 ? 1 : 0))
    }

    /// The multiple as written: "1.1".
    public var description: String {
        let (whole, fraction) = millionths.quotientAndRemainder(dividingBy: 1_000_000)
        guard fraction != 0 else { return "\(whole)" }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 6 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }
}
