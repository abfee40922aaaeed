import Ledger
import Metering
import Policy

/// The summary as its own CSV (`tokenctl report --format csv --summary`), so that the rows' CSV
/// stays one header and its records. Long form, one fact per record:
///
/// ```
/// metric,subject,value
/// total_cost_usd,,12.345678
/// daily_cost_per_active_user_usd,2026-11-02,0.500000
/// budget_utilisation_pct,user:alice/month,87.50
/// ```
///
/// `subject` is empty for whole-period facts, a local day `YYYY-MM-DD` for daily ones,
/// `user:NAME/PERIOD`, `team:NAME/PERIOD` or `org/PERIOD` for budgets, and `YYYY-MM` for the
/// forecast. Money in `_usd` (6 decimals) and `_picodollars` (exact); absent values are empty.
enum SummaryCSV {
    static func render(_ s: ReportSummary) -> String {
        var records: [[String]] = [["metric", "subject", "value"]]
        func add(_ metric: String, _ subject: String, _ value: String?) { records.append([metric, subject, value ?? ""]) }
        func add(_ metric: String, _ value: String?) { add(metric, "", value) }
        func usd(_ m: Money.Total?) -> String? { m?.formatted(decimals: 6) }
        let t = s.totals
        add("total_cost_usd", usd(t.cost))
        add("total_cost_picodollars", String(t.cost.picodollars))
        add("requests", String(t.requests))
        add("active_users", String(s.activeUsers))
        add("daily_cost_per_active_user_mean_usd", usd(s.meanDailyCostPerActiveUser))
        for d in s.days {
            add("day_requests", d.day, String(d.requests))
            add("day_active_users", d.day, String(d.activeUsers))
            add("day_cost_usd", d.day, usd(d.cost))
            add("daily_cost_per_active_user_usd", d.day, usd(d.costPerActiveUser))
        }
        add("burn_window_start", Timestamp.iso8601(micros: s.burnStart))
        add("burn_window_end", Timestamp.iso8601(micros: s.burnEnd))
        add("tokens", String(s.tokens))
        add("tokens_per_hour", s.tokensPerHour.map(String.init))
        add("cost_per_hour_usd", usd(s.costPerHour))
        add("retries", String(t.retries))
        add("retry_share_of_calls_pct", s.retryShareOfCalls)
        add("retry_cost_usd", usd(t.retryCost))
        add("retry_cost_picodollars", String(t.retryCost.picodollars))
        add("retry_share_of_cost_pct", s.retryShareOfCost)
        for b in s.budgets {
            let subject: String = switch b.scope {
            case .user(let name): "user:\(name)/\(b.period.rawValue)"
            case .team(let name): "team:\(name)/\(b.period.rawValue)"
            case .org: "org/\(b.period.rawValue)"
            }
            add("budget_spent_usd", subject, usd(b.spent))
            add("budget_limit_usd", subject, b.limit?.formatted(decimals: 6))
            add("budget_tokens", subject, String(b.tokens))
            add("budget_token_limit", subject, b.tokenLimit.map(String.init))
            add("budget_utilisation_pct", subject, SummaryText.percent(b.utilisationHundredths).replacingOccurrences(of: "%", with: ""))
        }
        if let f = s.forecast {
            let month = SummaryText.monthLabel(f.monthStart, s.timeZone)
            add("forecast_month_to_date_usd", month, usd(f.monthToDate))
            add("forecast_month_end_usd", month, usd(f.projected))
            add("forecast_month_end_picodollars", month, String(f.projected.picodollars))
        }
        return records.map(CSVRendering.record).joined()
    }
}
