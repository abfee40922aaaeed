import Foundation
import Ledger
import Reports

/// The query string of `GET /admin/api/report`, checked and turned into a `ReportQuery`.
/// Pure: every bad parameter is a 400 naming it, and the work a request may ask for is bounded
/// (the span, the grouping depth, the rows).
struct AdminReportRequest: Equatable {
    var query: ReportQuery
    /// Rows past this many are folded into one `(others)` row (`Report.top`).
    var top: Int
    /// `summary=true`: add the report's summary object (the same as `tokenctl report --format json`).
    var summary = false
    /// `budgets=false`: the summary without its budgets (a page that shows them from
    /// /admin/api/health need not fetch them again: 40,000 budgets were 11 MB of a summary).
    var budgets = true

    /// The longest period one request may cover (a year and a month: a year-on-year view fits).
    static let maxSpanMicros: Int64 = 400 * UnixTime.microsPerDay
    /// Without `since`, a report covers this many days before `until`.
    static let defaultSpanMicros: Int64 = 30 * UnixTime.microsPerDay
    /// The most rows one answer carries; `top` may ask for fewer.
    static let maxRows = 1_000
    /// The most `by` dimensions (nesting deeper multiplies rows without telling more).
    static let maxDimensions = 3

    static let parameters: Set<String> = ["since", "until", "period", "by", "tz", "user", "team", "model", "top", "summary", "budgets"]

    /// `defaultTimeZone` applies without `tz` (the policy's calendar zone).
    init(queryString: String?, now: Int64, defaultTimeZone: TimeZone) throws(Refusal) {
        let items = try Self.items(queryString)
        func single(_ name: String) throws(Refusal) -> String? {
            let values = items.filter { $0.0 == name }.map(\.1)
            guard values.count <= 1 else { throw Self.bad(name, "'\(name)' may be given once.") }
            return values.first
        }
        for (name, _) in items where !Self.parameters.contains(name) {
            throw Self.bad(name, "Unknown parameter '\(name)'; known: \(Self.parameters.sorted().joined(separator: ", ")).")
        }

        // Dates, months and `mtd` are read in the report's zone, as `tokenctl report --tz` reads them.
        var timeZone = defaultTimeZone
        if let sent = try single("tz") {
            let zone = sent.replacingOccurrences(of: " ", with: "+")  // Etc/GMT+5 sent unencoded
            guard let named = TimeZone(identifier: zone) else {
                throw Self.bad("tz", "'tz' must be an IANA time zone such as Europe/Paris or UTC, not '\(zone)'.")
            }
            timeZone = named
        }

        let since = try single("since"), until = try single("until"), period = try single("period")
        var from: Int64, to: Int64
        if let period {
            guard since == nil, until == nil else {
                throw Self.bad("period", "Give either 'period' or 'since'/'until', not both.")
            }
            do {
                (from, to) = try ReportPeriod.range(since: nil, until: nil, period: period, now: now, timeZone: timeZone)
            } catch {
                throw Self.bad("period", "'period' must be YYYY-MM or last-month, not '\(period)'.")
            }
        } else {
            to = try until.map { text throws(Refusal) in
                try Self.instant(text, name: "until", now: now, timeZone: timeZone)
            } ?? now + 1
            from = try since.map { text throws(Refusal) in
                try Self.instant(text, name: "since", now: now, timeZone: timeZone)
            } ?? to - Self.defaultSpanMicros
            guard from < to else { throw Self.bad("since", "'since' must be before 'until'.") }
        }
        // (Without `until` the report ends just after now, to count a call started this µs:
        // `since=400d` is 400 days.)
        guard to - from <= Self.maxSpanMicros + (period == nil && until == nil ? 1 : 0) else {
            throw Self.bad(period == nil ? "since" : "period",
                           "The period may span at most \(Self.maxSpanMicros / UnixTime.microsPerDay) days; ask for several reports.")
        }

        var dimensions: [ReportDimension] = []
        for (name, value) in items where name == "by" {
            guard let dimension = ReportDimension(rawValue: value) else {
                throw Self.bad("by", "'by' must be one of \(ReportDimension.allCases.map(\.rawValue).joined(separator: ", ")), not '\(value)'.")
            }
            guard !dimensions.contains(dimension) else {
                throw Self.bad("by", "'by' names '\(value)' twice; each dimension groups once.")
            }
            dimensions.append(dimension)
        }
        guard dimensions.count <= Self.maxDimensions else {
            throw Self.bad("by", "At most \(Self.maxDimensions) 'by' dimensions.")
        }

        var filters: [ReportDimension: String] = [:]
        for dimension in [ReportDimension.user, .team, .model] {
            if let value = try single(dimension.rawValue) {
                guard !value.isEmpty, value.count <= 256 else {
                    throw Self.bad(dimension.rawValue, "'\(dimension.rawValue)' must be a non-empty name.")
                }
                filters[dimension] = value
            }
        }

        var query = ReportQuery(since: from, until: to, groupBy: dimensions, filters: filters)
        query.timeZone = timeZone
        self.query = query

        if let text = try single("top") {
            guard let top = Int(text), (1...Self.maxRows).contains(top) else {
                throw Self.bad("top", "'top' must be a whole number from 1 to \(Self.maxRows), not '\(text)'.")
            }
            self.top = top
        } else {
            self.top = Self.maxRows
        }
        switch try single("summary") {
        case nil, "false": summary = false
        case "true": summary = true
        case let other?: throw Self.bad("summary", "'summary' must be true or false, not '\(other)'.")
        }
        switch try single("budgets") {
        case nil, "true": budgets = true
        case "false": budgets = false
        case let other?: throw Self.bad("budgets", "'budgets' must be true or false, not '\(other)'.")
        }
    }

    private static func instant(_ text: String, name: String, now: Int64, timeZone: TimeZone) throws(Refusal) -> Int64 {
        // An offset's `+` sent unencoded arrives as a space (form encoding): an instant has no
        // other space, so it is read as the `+` it was.
        let text = text.replacingOccurrences(of: " ", with: "+")
        do {
            return try ReportPeriod.parseInstant(text, now: now, timeZone: timeZone)
        } catch {
            throw bad(name, "'\(name)' must be YYYY-MM-DD, an ISO 8601 date-time, Nd (days ago) or mtd, not '\(text)'.")
        }
    }

    /// `name=value` pairs in order, percent-decoded (`+` is a space, as forms send it).
    static func items(_ queryString: String?) throws(Refusal) -> [(String, String)] {
        guard let queryString, !queryString.isEmpty else { return [] }
        var items: [(String, String)] = []
        for part in queryString.split(separator: "&", omittingEmptySubsequences: true) {
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ text: Substring) throws(Refusal) -> String {
                guard let decoded = text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding else {
                    throw bad(String(pair[0].prefix(40)), "Malformed percent-encoding in the query string.")
                }
                return decoded
            }
            let name = try decode(pair[0])
            items.append((name, pair.count == 2 ? try decode(pair[1]) : ""))
        }
        guard items.count <= 32 else { throw bad("query", "Too many parameters (at most 32).") }
        return items
    }

    static func bad(_ parameter: String, _ message: String) -> Refusal {
        Refusal(.badRequest, message, field: parameter)
    }
}
