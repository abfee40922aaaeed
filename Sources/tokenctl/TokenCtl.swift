import ArgumentParser

@main
struct TokenCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenctl",
        abstract: "An LLM token-cost accounting proxy: forwards OpenAI and Anthropic calls, meters them, records every call.",
        discussion: """
            Point an OpenAI SDK at http://HOST:PORT/v1 or an Anthropic SDK at http://HOST:PORT, with a key \
            from `tokenctl keys create`. Policies (providers, routes, prices) live in a directory of YAML \
            files; the ledger is a SQLite file.
            """,
        subcommands: [Serve.self, Keys.self, Report.self, Export.self, PolicyCommand.self, Prices.self, Demo.self])
}

/// Options every command that touches the ledger shares.
struct LedgerOptions: ParsableArguments {
    @Option(name: .long, help: "The ledger database file (SQLite).")
    var db: String = "data/tokenctl.sqlite"
}
