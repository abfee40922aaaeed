import ArgumentParser
import Ledger
import Policy
import Reports

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Work with policy files.",
        subcommands: [Check.self, Simulate.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a policy directory; print every problem as file:line: field: message (exit 1 on any).")

        @Argument(help: "The policy directory.")
        var directory: String = "policies"

        @Flag(help: "Exit 2 when there are warnings (a deploy's check: plans that limit nothing, unused prices, ...).")
        var strict = false

        func run() throws {
            let policy = try loadPolicyOrExit(directory)
            for warning in policy.warnings { print("warning: \(warning)") }
            print("\(directory): ok (version \(policy.version), \(policy.providers.count) providers, \(policy.routes.count) routes, \(policy.prices.entries.count) prices)")
            if strict, !policy.warnings.isEmpty { throw ExitCode(2) }
        }
    }
}

extension PolicyCommand {
    struct Simulate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replay the ledger's calls against a candidate policy: what its plans would refuse or clamp, and save.",
            discussion: """
                Runs the gateway's own rate limiters, concurrency gates, quota book and breaker in \
                recorded time over the calls that started in [--since, --until), using each call's \
                actual tokens and cost. Nothing is changed. Progress goes to stderr past a second.
                """)

        @Argument(help: "The candidate policy directory.")
        var directory: String = "policies"

        @OptionGroup var ledger: LedgerOptions

        @Option(help: "Start of the replay: YYYY-MM-DD, an ISO 8601 date-time, Nd or mtd.")
        var since: String

        @Option(help: "End of the replay (exclusive). Default: now.")
        var until: String?

        @Option(help: "IANA time zone of --since/--until dates. Default: the candidate policy's time_zone.")
        var tz: String?

        @Flag(help: "List every user replayed, not only those the candidate policy refuses or clamps calls for.")
        var all = false

        func run() throws {
            let policy = try loadPolicyOrExit(directory)
            let reader = try ledger.existing().openSource()
            defer { reader.close() }
            let zone = try timeZone(named: tz, default: policy.plans.timeZone)
            let (from, to) = try nonEmptySpan(ReportPeriod.range(since: since, until: until, period: nil,
                                                                 now: UnixTime.nowMicros(), timeZone: zone),
                                              since: since, until: until)
            // Calls are replayed as they are read, so memory holds the calls in flight, not the span's.
            var replay = PolicySimulation.Replay(policy: policy)
            var count = 0
            let replaying = ProgressLine("replayed")
            try reader.forEachEntry(since: from, until: to) { entry in
                replay.replay(entry)
                count += 1
                replaying.update(count)
            }
            replaying.finish(count)
            print(PolicySimulation.table(replay.results(), everyone: all), terminator: "")
        }
    }
}
