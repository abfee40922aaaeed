import ArgumentParser
import Foundation
import Ledger
import Policy
import Reports

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and revoke client API keys (stored only as SHA-256 hashes).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a key for a user; prints the secret once, as the last line of stdout.")

        @Option(help: "The user the key's calls are billed to (for an admin key: who holds it).")
        var user: String

        @Option(help: "The user's team (for team reports and budgets).")
        var team: String?

        @Flag(help: "An admin key: opens the dashboard and the admin API (/admin/api/…), and is refused on model routes.")
        var admin = false

        @OptionGroup var ledger: LedgerOptions

        func validate() throws {
            if admin, team != nil {
                throw ValidationError("--team does not apply to an admin key: it makes no billed calls")
            }
            for (name, value) in [("user", user), ("team", team)] {
                if let value, let problem = ReportDimension.problem(asKeyOwner: value, noun: name) {
                    throw ValidationError("--\(name) \(problem)")
                }
            }
        }

        func run() throws {
            let backend = try ledger.creating()
            // A key goes where the proxy that serves it reads keys: warn when that ledger did not
            // exist (a command run from another folder makes a ledger no proxy uses).
            var newLedger: String?
            if case .sqlite(let path) = backend, !FileManager.default.fileExists(atPath: path) { newLedger = path }
            let store = try backend.openKeys()
            defer { store.close() }
            // Names are case-sensitive: `Research` is a team of its own, without research's budget.
            let existing = newLedger == nil ? try store.list() : []
            for note in Self.caseNotes(user: user, team: team, existing: existing) {
                FileHandle.standardError.write(Data("note: \(note)\n".utf8))
            }
            let (id, secret) = APIKeySecret.generate()
            try store.insert(APIKeyRecord(id: id, secretHash: APIKeySecret.hash(secret), user: user, team: team,
                                          createdAt: Int64(Date().timeIntervalSince1970 * 1_000_000), revokedAt: nil,
                                          admin: admin))
            if let newLedger {
                let absolute = URL(fileURLWithPath: newLedger).standardizedFileURL.path
                let note = "note: \(absolute) did not exist and was created: only a proxy started with --db on this file accepts the key\n"
                FileHandle.standardError.write(Data(note.utf8))
            }
            let what = admin ? "admin key" : "key"
            print("created \(what) \(id) for user \(user)\(team.map { " (team \($0))" } ?? ""); the secret is shown once:")
            print(secret)
        }

        /// A user or team named as an existing key's is, but for letter case: most likely a typo,
        /// which would give the calls a report row, and budgets, of their own.
        static func caseNotes(user: String, team: String?, existing: [APIKeyRecord]) -> [String] {
            var notes: [String] = []
            for (noun, name, names) in [("user", user, Set(existing.map(\.user))),
                                        ("team", team, Set(existing.compactMap(\.team)))] {
                guard let name, !names.contains(name) else { continue }
                let alike = names.filter { $0.lowercased() == name.lowercased() }.sorted()
                if !alike.isEmpty {
                    notes.append("\(noun) '\(name)' is new; keys exist for \(alike.map { "'\($0)'" }.joined(separator: ", ")): "
                                 + "names are case-sensitive, so its calls are reported, and budgeted, apart")
                }
            }
            return notes
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (ids, owners, role, state; never secrets).")

        @OptionGroup var ledger: LedgerOptions

        func run() throws {
            let store = try ledger.existing().openKeys()
            defer { store.close() }
            let records = try store.list()
            let rows = records.map { r in
                [r.id, r.user, r.team ?? "-", r.admin ? "admin" : "caller", r.createdAt.map(Self.date) ?? "-",
                 r.revokedAt.map { "revoked " + Self.date($0) } ?? "active"]
            }
            print(TextColumns.render(header: ["ID", "USER", "TEAM", "ROLE", "CREATED", "STATE"], rows: rows, labelColumns: 6),
                  terminator: "")
        }

        static func date(_ micros: Int64) -> String {
            Date(timeIntervalSince1970: Double(micros) / 1_000_000).formatted(.iso8601)
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a key by id; a running proxy refuses it within about a quarter of a second.")

        @Argument(help: "The key id (key_…), as shown by `keys list`.")
        var id: String

        @OptionGroup var ledger: LedgerOptions

        func run() throws {
            let store = try ledger.existing().openKeys()
            defer { store.close() }
            guard try store.revoke(id: id, at: UnixTime.nowMicros()) else {
                FileHandle.standardError.write(Data("no active key with id \(id)\n".utf8))
                throw ExitCode(1)
            }
            print("revoked \(id)")
        }
    }
}

/// Whether `path` is an existing directory (a symlink to one counts).
func isDirectory(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
}

/// Creates the folder a ledger file goes in (`data/` by default).
func createParentDirectory(of path: String) throws {
    let dir = (path as NSString).deletingLastPathComponent
    if isDirectory(path) {
        throw CommandFailure("--db \(path) is a directory: name the ledger file in it (e.g. \(path)/tokenctl.sqlite)")
    }
    guard !dir.isEmpty else { return }
    // mkdir -p, one level at a time, for the system's own reason when one fails.
    var made = dir.hasPrefix("/") ? "" : "."
    for part in dir.split(separator: "/") {
        made += "/" + part
        guard mkdir(made, 0o755) != 0, errno != EEXIST else { continue }
        let reason = errno == EACCES ? "permission denied" : String(cString: strerror(errno)).lowercased()
        throw CommandFailure("cannot create the ledger's directory \(dir) (\(reason)): create it, writable by this user, or pick another --db")
    }
    guard isDirectory(dir) else {
        throw CommandFailure("cannot create the ledger's directory \(dir) (a file has its name, or one on its way): pick another --db")
    }
}
