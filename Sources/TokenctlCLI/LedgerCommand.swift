import ArgumentParser
import Foundation
import Gateway
import Ledger
import Metering
import PostgresLedger
import Reports

struct LedgerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Maintain the ledger: back a SQLite ledger up, copy it into PostgreSQL, prune old raw rows.",
        subcommands: [Backup.self, Migrate.self, Prune.self])

    struct Backup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a SQLite ledger (calls, rollups and API keys) to a new file, safely while it serves.",
            discussion: """
                Copying the .sqlite file alone loses the calls still in its -wal file (often all the recent \
                ones). This reads one consistent snapshot through SQLite (VACUUM INTO), WAL included, while \
                gateways keep writing, and writes a compact file that needs nothing beside it; then checks the \
                copy and prints its counts. Calls in flight at that moment are not in it. To restore: stop the \
                gateway, move the old ledger and its -wal and -shm files away, put the copy in its place. \
                A PostgreSQL ledger is backed up with PostgreSQL's tools (pg_dump).
                """)

        @Option(help: "The new file to write (refused if it exists).")
        var to: String

        @OptionGroup var ledger: LedgerOptions

        func run() throws {
            guard case .sqlite(let path) = try ledger.existing() else {
                throw CommandFailure("a PostgreSQL ledger is backed up with PostgreSQL's own tools (pg_dump, or the server's base backups)")
            }
            let outcome: LedgerBackup.Outcome
            do {
                outcome = try LedgerBackup.run(path: path, to: to)
            } catch let refusal as LedgerBackup.Refusal {
                throw CommandFailure(refusal.description)
            }
            print("backed up \(outcome.calls) calls and \(outcome.keys) API keys from \(path) to \(to) (\(outcome.bytes) bytes)")
        }
    }

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a SQLite ledger (calls and API keys) into a PostgreSQL ledger, then verify both sides.",
            discussion: """
                Prints the row count and per-column sums (tokens, cost in pico-dollars, latency) of both \
                sides and exits 1 if any differs. Running it again skips what is already copied, so an \
                interrupted copy is finished by repeating the command. Stop the servers writing the SQLite \
                ledger first, or calls recorded during the copy are left behind (a re-run copies them).
                """)

        @Option(help: "The SQLite ledger to copy: sqlite:FILE or FILE.")
        var from: String

        @Option(help: "The PostgreSQL ledger: postgres://user[:password]@host[:port]/database.")
        var to: String

        func run() throws {
            guard !PostgresLocation.isPostgresURL(from) else {
                throw CommandFailure("--from must be the SQLite ledger (sqlite:FILE or FILE); the PostgreSQL one goes in --to")
            }
            let path = from.hasPrefix("sqlite:") ? String(from.dropFirst("sqlite:".count)) : from
            _ = try existingLedger(path)
            let location: PostgresLocation
            do { location = try PostgresLocation(url: to) } catch { throw CommandFailure("--to: \(error)") }
            let progress = ProgressLine("copied")
            // What a stopped gateway left beside the file (rows, calls in flight) goes along.
            try StoppedGateway.recordWhatTheyLeft(sqlitePath: path)
            let outcome = try LedgerMigration.run(from: path, to: location, progress: progress.update)
            progress.finish(outcome.copied + outcome.alreadyPresent)
            print("copied \(outcome.copied) calls (\(outcome.alreadyPresent) already present) from \(path) to \(location)")
            let rows = zip(outcome.source.figures, outcome.target.figures).map { source, target in
                [source.name, source.value, target.value, source.value == target.value ? "ok" : "MISMATCH"]
            } + [["api_keys (of the source)", "\(outcome.sourceKeys)", "\(outcome.targetKeys)",
                  outcome.sourceKeys == outcome.targetKeys ? "ok" : "MISMATCH"]]
            print(TextColumns.render(header: ["FIGURE", "SQLITE", "POSTGRESQL", ""], rows: rows, labelColumns: 1),
                  terminator: "")
            guard outcome.matches else {
                throw CommandFailure("the PostgreSQL ledger differs from the SQLite one (see MISMATCH above)")
            }
        }
    }

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete raw call rows that started before a date; reports keep their totals from the rollups.",
            discussion: """
                SQLite: adds calls not yet rolled up to the hourly and daily rollups, then deletes the raw \
                rows before DATE (00:00 UTC) in one transaction. PostgreSQL (a postgres:// --db): computes \
                the hourly and daily rollups of the calls since the previous prune with the same code, stores \
                them in rollup_cells_pruned, then in one transaction drops the monthly partitions before DATE \
                and deletes the other calls before it. Either way, reports over whole UTC hours (days in UTC \
                or in zones with whole-hour offsets) keep their figures; export, policy simulate and report \
                edges inside an hour no longer see the pruned calls. DATE must be on or before the last day \
                of the previous UTC month and the Sunday before this ISO week (budgets are rebuilt from \
                this month's and this week's rows).
                """)

        @Option(help: "Delete calls that started before this UTC day (YYYY-MM-DD, i.e. before its 00:00 UTC).")
        var before: String

        @OptionGroup var ledger: LedgerOptions

        func run() throws {
            guard let day = Day(before) else { throw CommandFailure("--before: expected YYYY-MM-DD, got \(before)") }
            let date = day.unixSeconds * UnixTime.microsPerSecond
            let backend = try ledger.existing()
            let outcome: LedgerPrune.Outcome
            do {
                switch backend {
                case .sqlite(let path):
                    try LedgerPrune.checkDate(date)
                    // What a stopped gateway left goes in first: a pruned row would not be found.
                    try StoppedGateway.recordWhatTheyLeft(sqlitePath: path)
                    outcome = try LedgerPrune.prune(path: path, before: date)
                case .postgres(let location): outcome = try PostgresLedgerPrune.prune(location: location, before: date)
                }
            } catch let refusal as LedgerPrune.Refusal {
                throw CommandFailure(refusal.description)
            } catch let left as JournalLeftBehind {
                throw CommandFailure(left.description)
            }
            print("deleted \(outcome.deleted) calls that started before \(day) 00:00 UTC from \(backend)"
                  + (outcome.rolledUp > 0 ? " (rolled up \(outcome.rolledUp) pending calls first)" : ""))
        }
    }
}
