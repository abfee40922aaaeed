import ArgumentParser
import Foundation
import Ledger
import Reports

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What each user (team, model, day) cost over a period.",
        discussion: """
            Reads the ledger (also while a proxy writes it). Money is exact: the table shows dollars \
            to the micro-dollar, CSV and JSON also carry exact pico-dollars (cost_picodollars). \
            Each row is rounded for display on its own; TOTAL is the exact sum, rounded once.
            """)

    @OptionGroup var ledger: LedgerOptions

    @OptionGroup var span: PeriodOptions

    @Option(help: "Group by user, team, model, provider, plan, key, day, week or month; repeat to nest (--by team --by model).")
    var by: [ReportDimension] = [.user]

    @Option(help: "Only this user's calls.")
    var user: String?

    @Option(help: "Only this team's calls.")
    var team: String?

    @Option(help: "Only calls of this model (as served, else as requested).")
    var model: String?

    @Option(help: "Show the N costliest groups; the rest are folded into one (others) row.")
    var top: Int?

    @Option(help: "Output format: table, csv, json or markdown.")
    var format: ReportFormat = .table

    func run() throws {
        let path = try existingLedger(ledger.db)
        let (from, to) = try span.range()
        var filters: [ReportDimension: String] = [:]
        filters[.user] = user
        filters[.team] = team
        filters[.model] = model
        let query = ReportQuery(since: from, until: to, groupBy: by, filters: filters)
        let reader = try LedgerReader(path: path)
        defer { reader.close() }
        var report = try reader.report(query)
        if let top { report = report.top(top) }
        print(ReportRenderer.render(report, query: query, format: format), terminator: "")
    }
}

extension ReportDimension: ExpressibleByArgument {}
extension ReportFormat: ExpressibleByArgument {}
