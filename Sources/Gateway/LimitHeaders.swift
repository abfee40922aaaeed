import Foundation
import Metering
import Policy

/// The headers that tell a client where it stands: OpenAI-style `x-ratelimit-*`, the payer's
/// remaining budget, and the retry hints of refusals (`retry-after`, `x-should-retry`).
enum LimitHeaders {
    static func rate(_ status: RateStatus) -> [(String, String)] {
        var headers: [(String, String)] = []
        for (name, meter) in [("requests", status.requests), ("tokens", status.tokens)] {
            guard let meter else { continue }
            headers.append(("x-ratelimit-limit-\(name)", String(meter.limit)))
            headers.append(("x-ratelimit-remaining-\(name)", String(meter.remaining)))
            headers.append(("x-ratelimit-reset-\(name)", duration(meter.resetMicros)))
        }
        return headers
    }

    /// The smallest dollar amount left over the payer's budgets, and when that budget resets.
    static func budget(_ standings: [QuotaStanding]) -> [(String, String)] {
        let tightest = standings.compactMap { s in s.usdLeft.map { (s, $0) } }.min { $0.1 < $1.1 }
        guard let (standing, left) = tightest else { return [] }
        return [("x-tokenctl-budget-remaining-usd", max(left, .zero).formatted(decimals: 6)),
                ("x-tokenctl-budget-resets-at",
                 Date(timeIntervalSince1970: TimeInterval(standing.resetsAt / 1_000_000)).formatted(.iso8601))]
    }

    /// `retry-after` (whole seconds, rounded up, at least 1) and `retry-after-ms`.
    static func retryAfter(_ micros: Int64) -> [(String, String)] {
        let millis = max(1, (micros + 999) / 1_000)
        return [("retry-after", String(max(1, (millis + 999) / 1_000))), ("retry-after-ms", String(millis))]
    }

    /// Durations as OpenAI writes them in `x-ratelimit-reset-*`: `1s`, `12ms`, `6m0s`.
    static func duration(_ micros: Int64) -> String {
        let millis = max(0, (micros + 999) / 1_000)
        if millis < 1_000 { return "\(millis)ms" }
        let seconds = Double(millis) / 1_000
        if seconds < 60 {
            let text = String(format: "%.3f", seconds)
            return text.replacingOccurrences(of: #"\.?0+$"#, with: "", options: .regularExpression) + "s"
        }
        let whole = Int(seconds.rounded(.up))
        return "\(whole / 60)m\(whole % 60)s"
    }
}

