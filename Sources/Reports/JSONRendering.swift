import Metering
import Ledger
import Policy

/// One JSON object, keys in a stable order:
///
/// ```
/// {"since":"2025-01-01T00:00:00Z","until":"2025-02-01T00:00:00Z","time_zone":"UTC","group_by":["user"],
///  "rows":[{"user":"alice","requests":3,…}],"totals":{"requests":3,…},"summary":{…}}
/// ```
///
/// - `since`/`until`: the half-open period, ISO 8601 UTC (fraction of a second only when
///   non-zero); `time_zone`: the IANA zone of days, weeks, months and active days.
/// - `group_by`: dimension names; each row has those keys first, as strings (`"(none)"` for a
///   missing user/team/model, `YYYY-MM-DD` for a day).
/// - Figures, in rows and in `totals`, named as in CSV (`MetricColumn.all`): counts are
///   integers; money (`cost_usd`, `cost_per_request_usd`, `retry_cost_usd`: 6-decimal strings;
///   `cost_picodollars`, `retry_cost_picodollars`: exact integer strings) is never a JSON
///   number, because a number may be read as a double; milliseconds are numbers with 3
///   decimals and `cost_share_pct` a number with 2, or null when absent.
/// - `summary` (only when computed): see `summary(_:)`.
enum JSONRendering {
    static func render(_ report: Report, query: ReportQuery, summary: ReportSummary? = nil) -> String {
        var output = "{\"since\":" + string(Timestamp.iso8601(micros: query.since))
        output += ",\"until\":" + string(Timestamp.iso8601(micros: query.until))
        output += ",\"time_zone\":" + string(ZoneName.of(query.timeZone))
        output += ",\"group_by\":[" + query.groupBy.map { string($0.rawValue) }.joined(separator: ",") + "]"
        let context = MetricColumn.Context(totalCost: report.totals.cost)
        output += ",\"rows\":[" + report.rows.map { row in
            let labels = zip(query.groupBy, row.values).map { string($0.rawValue) + ":" + string($1) }
            return "{" + (labels + figures(row.figures, context.folding(row))).joined(separator: ",") + "}"
        }.joined(separator: ",") + "]"
        output += ",\"totals\":{" + figures(report.totals, context).joined(separator: ",") + "}"
        if let summary { output += ",\"summary\":" + Self.summary(summary) }
        return output + "}\n"
    }

    private static func figures(_ f: ReportFigures, _ context: MetricColumn.Context) -> [String] {
        MetricColumn.all.map { column in
            let value = column.value(f, context)
            let json: String
            switch column.kind {
            case .count, .milliseconds, .percent: json = value ?? "null"
            case .dollars, .exactInteger: json = value.map(string) ?? "null"
            }
            return string(column.name) + ":" + json
        }
    }

    /// The summary object (definitions in `ReportSummary`):
    ///
    /// `total_cost_usd`, `total_cost_picodollars`, `requests`, `active_users`,
    /// `daily_cost_per_active_user_mean_usd` (null without active users), `days`: [{`day`,
    /// `requests`, `active_users`, `cost_usd`, `cost_picodollars`, `cost_per_active_user_usd`}],
    /// `burn_rate`: {`window_start`, `window_end`, `tokens`, `tokens_per_hour`, `cost_per_hour_usd`}
    /// (rates null for an empty window), `retries`: {`count`, `share_of_calls_pct`, `cost_usd`,
    /// `cost_picodollars`, `share_of_cost_pct`}, `budgets`: [{`scope` (user, team, org),
    /// `payer` (null for org), `period`, `period_start`, `period_end`, `spent_usd`,
    /// `spent_picodollars`, `limit_usd`, `tokens`, `token_limit`, `utilisation_pct`}] highest
    /// first, `forecast`: {`month`, `month_start`, `month_end`, `month_to_date_usd`,
    /// `month_to_date_picodollars`, `projected_usd`, `projected_picodollars`}.
    static func summary(_ s: ReportSummary) -> String {
        func money(_ m: Money.Total?) -> String { m.map { string($0.formatted(decimals: 6)) } ?? "null" }
        func picos(_ m: Money.Total) -> String { string(String(m.picodollars)) }
        func time(_ micros: Int64) -> String { string(Timestamp.iso8601(micros: micros)) }
        func object(_ members: [(String, String)]) -> String {
            "{" + members.map { string($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
        }
        let t = s.totals
        let days = s.days.map { d in
            object([("day", string(d.day)), ("requests", String(d.requests)), ("active_users", String(d.activeUsers)),
                    ("cost_usd", money(d.cost)), ("cost_picodollars", picos(d.cost)),
                    ("cost_per_active_user_usd", money(d.costPerActiveUser))])
        }
        let budgets = s.budgets.map { b in
            let (scope, payer): (String, String) = switch b.scope {
            case .user(let name): ("user", string(name))
            case .team(let name): ("team", string(name))
            case .org: ("org", "null")
            }
            return object([
                ("scope", string(scope)), ("payer", payer), ("period", string(b.period.rawValue)),
                ("period_start", time(b.start)), ("period_end", time(b.end)), ("spent_usd", money(b.spent)),
                ("spent_picodollars", picos(b.spent)),
                ("limit_usd", money(b.limit.map { Money.Total(picodollars: Int128($0.picodollars)) })),
                ("tokens", String(b.tokens)), ("token_limit", b.tokenLimit.map(String.init) ?? "null"),
                ("utilisation_pct", SummaryText.percent(b.utilisationHundredths).replacingOccurrences(of: "%", with: "")),
            ])
        }
        var members: [(String, String)] = [
            ("total_cost_usd", money(t.cost)), ("total_cost_picodollars", picos(t.cost)),
            ("requests", String(t.requests)), ("active_users", String(s.activeUsers)),
            ("daily_cost_per_active_user_mean_usd", money(s.meanDailyCostPerActiveUser)),
            ("days", "[" + days.joined(separator: ",") + "]"),
            ("burn_rate", object([
                ("window_start", time(s.burnStart)), ("window_end", time(s.burnEnd)), ("tokens", String(s.tokens)),
                ("tokens_per_hour", s.tokensPerHour.map(String.init) ?? "null"), ("cost_per_hour_usd", money(s.costPerHour)),
            ])),
            ("retries", object([
                ("count", String(t.retries)), ("share_of_calls_pct", s.retryShareOfCalls ?? "null"),
                ("cost_usd", money(t.retryCost)), ("cost_picodollars", picos(t.retryCost)),
                ("share_of_cost_pct", s.retryShareOfCost ?? "null"),
            ])),
            ("budgets", "[" + budgets.joined(separator: ",") + "]"),
        ]
        if let f = s.forecast {
            members.append(("forecast", object([
                ("month", string(SummaryText.monthLabel(f.monthStart, s.timeZone))),
                ("month_start", time(f.monthStart)), ("month_end", time(f.monthEnd)),
                ("month_to_date_usd", money(f.monthToDate)), ("month_to_date_picodollars", picos(f.monthToDate)),
                ("projected_usd", money(f.projected)), ("projected_picodollars", picos(f.projected)),
            ])))
        } else {
            members.append(("forecast", "null"))
        }
        return object(members)
    }

    /// A JSON string literal (RFC 8259 escaping).
    static func string(_ text: String) -> String { JSONString.literal(text) }
}
