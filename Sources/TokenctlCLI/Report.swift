import ArgumentParser
import Foundation
import Ledger
import Policy
import Reports

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What each user (team, model, day) cost over a period, with a summary and where spend is heading.",
        discussion: """
            Reads the ledger (also while a proxy writes it). Money is exact: the table shows dollars \
            to the micro-dollar, CSV and JSON also carry exact pico-dollars (cost_picodollars). \
            Each row is rounded for display on its own; TOTAL is the exact sum, rounded once. \
            Dates, days, weeks, months and active days are in --tz (default: the policy's \
            time_zone, else UTC). The summary (table, markdown, html, json; csv only with \
            --summary, as its own file) has total cost, active users, daily cost per active user, \
            burn rate, retry share, budget utilisation against the policy and a month-end forecast.
            """)

    @OptionGroup var ledger: LedgerOptions

    @OptionGroup var span: PeriodOptions

    @Option(name: [.customLong("policies"), .customLong("policy")],
            help: "Policy directory for the time zone and budgets (skipped when absent).")
    var policies: String = "policies"

    @Option(help: "Group by user, team, model, provider, plan, key, day, week or month; repeat to nest (--by team --by model).")
    var by: [ReportDimension] = [.user]

    @Option(help: "Only this user's calls.")
    var user: String?

    @Option(help: "Only this team's calls.")
    var team: String?

    @Option(help: "Only calls of this model (as served, else as requested).")
    var model: String?

    // Unconditional: `--top -1` is a bad count, not a missing one followed by an option.
    @Option(parsing: .unconditional, help: "Show the N costliest groups; the rest are folded into one (others) row.")
    var top: Int?

    @Option(help: "Output format: table, csv, json, markdown or html.")
    var format: ReportFormat = .table

    @Option(help: "Figures of the table, markdown and html: 'all' or comma-separated names (requests,cost_usd,latency_p95_ms,…). CSV and JSON carry all.")
    var columns: String?

    @Flag(inversion: .prefixedNo,
          help: "Compute the summary (default: on, except for csv, where --summary prints the summary's CSV instead of the rows).")
    var summary: Bool?

    @Option(help: "Write to this file (atomically) instead of stdout.")
    var out: String?

    func validate() throws {
        if let top, top < 1 { throw ValidationError("--top must be 1 or more") }
        if let twice = by.enumerated().first(where: { by[..<$0.offset].contains($0.element) })?.element {
            throw ValidationError("--by \(twice.rawValue) is given twice; each dimension groups once")
        }
    }

    func run() throws {
        if let out, isDirectory(out) {
            throw CommandFailure("cannot write \(out): it is a directory (--out names the file to write)")
        }
        let backend = try ledger.existing()
        let selected = try columns.map { text in
            do { return try ReportColumns(parsing: text) } catch { throw CommandFailure("--columns: \(error)") }
        }
        let policy = try loadPolicyIfPresent()
        let zone = try span.zone(default: policy?.plans.timeZone ?? ReportPeriod.utc)
        let now = UnixTime.nowMicros()
        let (from, to) = try span.range(timeZone: zone)
        var filters: [ReportDimension: String] = [:]
        filters[.user] = user
        filters[.team] = team
        filters[.model] = model
        var query = ReportQuery(since: from, until: to, groupBy: by, filters: filters)
        query.timeZone = zone
        let reader = try backend.openSource(forOneCommand: true)
        defer { reader.close() }
        var report = try reader.report(query)
        if let top { report = report.top(top) }
        let wantsSummary = summary ?? (format != .csv)
        var computed = wantsSummary
            ? try ReportSummary.compute(reader: reader, query: query, plans: policy?.plans, now: now,
                                        models: format == .html) : nil
        if policy != nil { computed?.budgetSource = (policies as NSString).appendingPathComponent("plans.yaml") }
        let text = ReportRenderer.render(report, query: query, format: format, columns: selected, summary: computed)
        if let out {
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: out), options: .atomic)
            } catch {
                throw CommandFailure("cannot write \(out): \(error.localizedDescription)")
            }
        } else {
            try FileHandle.standardOutput.writeOrFail(Data(text.utf8))
        }
    }

    /// The policy, when its directory exists (a report needs none); its problems stop the report,
    /// since budgets and the zone would otherwise be silently wrong.
    private func loadPolicyIfPresent() throws -> PolicySet? {
        guard isDirectory(policies) else {
            // Said on stderr, beside the report: run from the wrong directory, a month close was
            // cut in UTC instead of the policy's zone, without a word.
            FileHandle.standardError.write(Data("""
                note: no policy directory at \(policies): days are cut in UTC unless --tz says otherwise, \
                and the summary has no budgets (pass --policies DIR)\n
                """.utf8))
            return nil
        }
        return try loadPolicyOrExit(policies)
    }
}

extension ReportDimension: ExpressibleByArgument {}
extension ReportFormat: ExpressibleByArgument {}
