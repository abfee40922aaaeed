import ArgumentParser
import Policy

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Work with policy files.",
        subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate a policy directory; print every problem as file:line: field: message (exit 1 on any).")

        @Argument(help: "The policy directory.")
        var directory: String = "policies"

        func run() throws {
            let policy = try loadPolicyOrExit(directory)
            for warning in policy.warnings { print("warning: \(warning)") }
            print("\(directory): ok (version \(policy.version), \(policy.providers.count) providers, \(policy.routes.count) routes, \(policy.prices.entries.count) prices)")
        }
    }
}
