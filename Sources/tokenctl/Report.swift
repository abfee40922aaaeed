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

    @Option(help: "Start of the period, inclusive: YYYY-MM-DD (UTC) or an ISO 8601 date-time. Default: the beginning.")
    var since: String?

    @Option(help: "End of the period, exclusive: YYYY-MM-DD (UTC) or an ISO 8601 date-time. Default: now.")
    var until: String?

    @Option(help: "Group by user, team, model or day; repeat to nest (--by team --by model).")
    var by: [ReportDimension] = [.user]

    @Option(help: "Output format: table, csv or json.")
    var format: ReportFormat = .table

    func run() throws {
        let path = try existingLedger(ledger.db)
        let query = ReportQuery(
            since: try since.map(ReportPeriod.parseInstant) ?? 0,
            until: try until.map(ReportPeriod.parseInstant) ?? UnixTime.nowMicros() + 1,
            groupBy: by)
        guard query.since < query.until else {
            throw CommandFailure("--since (\(since ?? "")) must be before --until (\(until ?? "now"))")
        }
        let reader = try LedgerReader(path: path)
        defer { reader.close() }
        print(ReportRenderer.render(try reader.report(query), query: query, format: format), terminator: "")
    }
}

extension ReportDimension: ExpressibleByArgument {}
extension ReportFormat: ExpressibleByArgument {}
