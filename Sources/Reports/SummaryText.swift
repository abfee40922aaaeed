import Foundation
import Ledger
import Metering
import Policy

/// The summary as people read it: labelled facts and small tables, shared by the table,
/// markdown and html formats (CSV and JSON have their own machine forms).
enum SummaryText {
    struct Section {
        var title: String
        var header: [String]
        var labelColumns: Int
        var rows: [[String]]
    }

    /// Days the text formats list (the most recent); JSON and CSV list them all.
    static let shownDays = 31
    /// Budgets the text formats list (the most used); JSON and CSV list them all.
    static let shownBudgets = 10

    static func render(_ summary: ReportSummary) -> String {
        var output = "Summary" + (ZoneName.isUTC(summary.timeZone) ? "" : " (\(summary.timeZone.identifier))") + "\n\n"
        let facts = SummaryText.facts(summary).map { ["  " + $0.0, $0.1] }
        output += TextColumns.render(header: facts[0], rows: Array(facts.dropFirst()), labelColumns: 2)
        for section in sections(summary) {
            output += "\n" + section.title + "\n\n"
            let layout = TextColumns(fitting: [section.header] + section.rows, labelColumns: section.labelColumns)
            output += ([layout.line(section.header), layout.rule] + section.rows.map(layout.line))
                .map { "  " + $0 + "\n" }.joined()
        }
        return output
    }

    static func facts(_ s: ReportSummary) -> [(String, String)] {
        let t = s.totals
        var facts: [(String, String)] = [
            ("total cost", DisplayText.dollars(t.cost)),
            ("requests", "\(DisplayText.grouped(t.requests)) (\(DisplayText.grouped(t.refused)) refused, \(DisplayText.grouped(t.errors)) errors)"),
            ("active users", DisplayText.grouped(s.activeUsers)),
        ]
        let activeDays = s.days.filter { $0.activeUsers > 0 }.count
        facts.append(("daily cost per active user", s.meanDailyCostPerActiveUser.map {
            DisplayText.dollars($0) + " (mean of \(activeDays) day\(activeDays == 1 ? "" : "s"))"
        } ?? "-"))
        if let tokens = s.tokensPerHour, let cost = s.costPerHour {
            facts.append(("token burn rate", "\(DisplayText.grouped(tokens)) \(tokens == 1 ? "token" : "tokens")/h, \(DisplayText.dollars(cost))/h over \(hours(s.burnEnd - s.burnStart)) h"))
        } else {
            facts.append(("token burn rate", "-"))
        }
        facts.append(("retry share", "\(DisplayText.grouped(t.retries)) of \(DisplayText.grouped(t.requests)) calls (\(s.retryShareOfCalls ?? "0.00")%), "
                      + "\(DisplayText.dollars(t.retryCost)) of cost (\(s.retryShareOfCost ?? "0.00")%)"))
        if let f = s.forecast {
            facts.append(("month-end forecast", "\(DisplayText.dollars(f.projected)) for \(monthLabel(f.monthStart, s.timeZone)) (so far \(DisplayText.dollars(f.monthToDate)))"))
        }
        return facts
    }

    static func sections(_ s: ReportSummary) -> [Section] {
        var sections: [Section] = []
        if !s.days.isEmpty {
            let days = s.days.suffix(shownDays)
            sections.append(Section(
                title: "Daily cost per active user" + (days.count < s.days.count ? " (last \(days.count) of \(s.days.count) days)" : ""),
                header: ["day", "active users", "requests", "cost", "per active user"], labelColumns: 1,
                rows: days.map { d in
                    [d.day, DisplayText.grouped(d.activeUsers), DisplayText.grouped(d.requests), DisplayText.dollars(d.cost),
                     d.costPerActiveUser.map(DisplayText.dollars) ?? "-"]
                }))
        }
        if !s.budgets.isEmpty {
            let budgets = s.budgets.prefix(shownBudgets)
            sections.append(Section(
                title: "Budget utilisation" + (budgets.count < s.budgets.count ? " (top \(budgets.count) of \(s.budgets.count))" : "")
                    + (s.budgetSource.map { ", limits from \($0)" } ?? ""),
                header: ["payer", "period", "from", "spent", "limit", "tokens", "token limit", "used"], labelColumns: 3,
                rows: budgets.map { b in
                    [b.scope.description, b.period.rawValue, Timestamp.iso8601(micros: b.start, in: s.timeZone),
                     DisplayText.dollars(b.spent), b.limit.map { DisplayText.dollars(Money.Total(picodollars: Int128($0.picodollars))) } ?? "-",
                     DisplayText.grouped(b.tokens), b.tokenLimit.map(DisplayText.grouped) ?? "-",
                     percent(b.utilisationHundredths)]
                }))
        }
        return sections
    }

    /// Hundredths of a percent as "87.50%".
    static func percent(_ hundredths: Int128) -> String {
        let fraction = String(hundredths % 100)
        return "\(hundredths / 100)." + (fraction.count == 1 ? "0" : "") + fraction + "%"
    }

    /// Microseconds as hours with one decimal, rounded half up: "71.5".
    static func hours(_ micros: Int64) -> String {
        let tenths = (micros + 180_000_000) / 360_000_000
        return DisplayText.grouped(Int(tenths / 10)) + "." + String(tenths % 10)
    }

    /// `YYYY-MM` of the local month starting at `micros`.
    static func monthLabel(_ micros: Int64, _ zone: TimeZone) -> String {
        String(Timestamp.iso8601(micros: micros, in: zone).prefix(7))
    }
}
