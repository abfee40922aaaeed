import ArgumentParser
import Foundation
import Ledger
import PostgresLedger
import Reports

/// The `tokenctl` command line: a thin shell over the library targets, one small struct per
/// command. The executable (Sources/tokenctl) only sets up the allocator and runs it.
public struct TokenCtl: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "tokenctl",
        abstract: "An LLM token-cost accounting proxy: forwards OpenAI and Anthropic calls, meters them, records every call.",
        discussion: """
            Point an OpenAI SDK at http://HOST:PORT/v1 or an Anthropic SDK at http://HOST:PORT, with a key \
            from `tokenctl keys create`. Policies (providers, routes, prices) live in a directory of YAML \
            files; the ledger is a SQLite file, or a PostgreSQL database shared by several replicas (--db postgres://…).
            """,
        subcommands: [Serve.self, Keys.self, Report.self, Export.self, PolicyCommand.self, Prices.self, LedgerCommand.self,
                      Demo.self])

    public init() {}
}

/// Options every command that touches the ledger shares.
struct LedgerOptions: ParsableArguments {
    @Option(name: .long, help: "The ledger: a SQLite database file, or postgres://user[:password]@host[:port]/database (without a password in the URL, PGPASSWORD from the environment is used; ?sslmode=require for TLS, prefer and the default disable connect without).")
    var db: String = "data/tokenctl.sqlite"

    /// The ledger, which must exist if it is a SQLite file (a mistyped path must not report nothing).
    func existing() throws -> LedgerBackend {
        let backend = try backend()
        if case .sqlite(let path) = backend { _ = try existingLedger(path) }
        return backend
    }

    /// The ledger, to be created if missing (a SQLite file's folder is made).
    func creating() throws -> LedgerBackend {
        let backend = try backend()
        if case .sqlite(let path) = backend { try createParentDirectory(of: path) }
        return backend
    }

    private func backend() throws -> LedgerBackend {
        do {
            return try LedgerBackend(db)
        } catch {
            throw CommandFailure("--db: \(error)")
        }
    }
}

/// The period options of commands that read a span of the ledger (`report`, `export`). Dates
/// and date-times without an offset are read in the zone of `--tz` (default: the command's).
struct PeriodOptions: ParsableArguments {
    @Option(help: "IANA time zone the dates are read in (e.g. Europe/Berlin); for report also its days, weeks and months. Default: report uses the policy's time_zone (else UTC), export UTC.")
    var tz: String?

    @Option(help: "Start, inclusive: YYYY-MM-DD, an ISO 8601 date-time, Nd (N days ago) or mtd. Default: the beginning.")
    var since: String?

    @Option(help: "End, exclusive: YYYY-MM-DD, an ISO 8601 date-time, Nd or mtd. Default: now.")
    var until: String?

    @Option(help: "A whole month instead of --since/--until: YYYY-MM or last-month.")
    var period: String?

    /// `--tz`, else `fallback`.
    func zone(default fallback: TimeZone) throws -> TimeZone {
        try timeZone(named: tz, default: fallback)
    }

    /// `[since, until)` in Unix microseconds, dates read in `timeZone`; refuses both forms at
    /// once and an empty span.
    func range(timeZone: TimeZone = ReportPeriod.utc) throws -> (Int64, Int64) {
        if period != nil, since != nil || until != nil {
            throw CommandFailure("give either --period or --since/--until, not both")
        }
        return try nonEmptySpan(ReportPeriod.range(since: since, until: until, period: period, now: UnixTime.nowMicros(),
                                                   timeZone: timeZone), since: since, until: until)
    }
}

/// `span`, refused when it is empty (a start at or after the end, or in the future).
func nonEmptySpan(_ span: (Int64, Int64), since: String?, until: String?) throws -> (Int64, Int64) {
    guard span.0 < span.1 else {
        throw CommandFailure("--since (\(since ?? "")) must be before --until (\(until ?? "now"))")
    }
    return span
}

/// An IANA zone name from `--tz`, or `fallback` when none was given.
func timeZone(named name: String?, default fallback: TimeZone) throws -> TimeZone {
    guard let name else { return fallback }
    guard let zone = TimeZone(identifier: name) else {
        throw CommandFailure("--tz: '\(name)' is not an IANA time zone name (e.g. UTC, Europe/Berlin, America/New_York)")
    }
    return zone
}
