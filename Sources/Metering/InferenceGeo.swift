/// Anthropic's US-only inference: a request's `inference_geo: "us"` (or a workspace's default
/// geo) runs the call on US infrastructure only, at a multiple of every token price of its newest
/// models (1.1 from Claude Opus 4.6 and Sonnet 4.6). The answer's `usage.inference_geo` says
/// where it ran (`us`, `global`, or `not_available` for models without the choice).
public enum InferenceGeo {
    /// The value of a request's `inference_geo`, or of an answer's, that costs the US-only price.
    public static let usOnly = "us"

    /// Whether the call runs in the US only: what the answer says, else what the request asked.
    public static func runsInUSOnly(served: String?, requested: String?) -> Bool {
        (served ?? requested) == usOnly
    }
}

/// A multiple of every token price (`ModelPrice.usOnly`), exact to a millionth: "1.1" is
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
