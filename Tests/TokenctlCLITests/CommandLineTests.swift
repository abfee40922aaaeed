import ArgumentParser
import Foundation
import Ledger
import LedgerTestSupport
import Testing
@testable import TokenctlCLI

/// The command line as a user types it: parsed by the real root command, run on real ledgers.
@Suite("Command line")
struct CommandLineTests {
    /// What `tokenctl ARGS` says when parsing refuses them (`validate()` included), as printed
    /// after `Error: `; nil when they parse. Nothing runs: a regression cannot start a server.
    static func parseRefusal(_ arguments: [String]) -> String? {
        do {
            _ = try TokenCtl.parseAsRoot(arguments)
            return nil
        } catch {
            return TokenCtl.message(for: error)
        }
    }

    /// What `tokenctl ARGS` says when it refuses them, parsing or running; nil when it ran.
    static func refusal(_ arguments: [String]) async -> String? {
        do {
            var command = try TokenCtl.parseAsRoot(arguments)
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
            return nil
        } catch {
            return TokenCtl.message(for: error)
        }
    }

    @Test("bad option values are refused with what is wrong", arguments: [
        (["report", "--top", "0"], "--top must be 1 or more"),
        (["report", "--top", "-1"], "--top must be 1 or more"),
        (["report", "--by", "user", "--by", "day", "--by", "user"], "--by user is given twice; each dimension groups once"),
        (["keys", "create", "--user", " alice"],
         "--user must be a non-empty name without surrounding spaces, control or invisible format characters (at most 128 characters)"),
        (["keys", "create", "--user", "(none)"],
         "--user '(none)' is reserved: reports use it to label calls without a user, or folded rows"),
        (["keys", "create", "--user", "alice", "--team", "(others)"],
         "--team '(others)' is reserved: reports use it to label calls without a team, or folded rows"),
        (["keys", "create", "--user", "ops", "--admin", "--team", "research"],
         "--team does not apply to an admin key: it makes no billed calls"),
        (["prices", "--on", "2026-01-01"], "--on needs --model (it picks the entry a model is charged by on that day)"),
        (["prices", "--model", "gpt-4o", "--on", "yesterday"], "--on must be a day, YYYY-MM-DD (got yesterday)"),
        (["serve", "--replica-timeout", "0"], "--replica-timeout must be between 1 and 3600 seconds (heartbeats go every 2 s)"),
        (["serve", "--drain-timeout", "5000"], "--drain-timeout must be between 0 and 3600 seconds"),
    ])
    func validation(arguments: [String], message: String) {
        #expect(Self.parseRefusal(arguments) == message)
    }

    @Test("the same options with good values parse")
    func goodValuesParse() {
        for arguments in [["report", "--top", "1"], ["keys", "create", "--user", "alice", "--team", "research"],
                          ["keys", "create", "--user", "ops", "--admin"], ["serve", "--replica-timeout", "1"],
                          ["serve", "--drain-timeout", "3600"]] {
            #expect(Self.parseRefusal(arguments) == nil, "\(arguments)")
        }
    }

    @Test("a report on a ledger that does not exist says so and creates nothing")
    func missingLedger() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.path("typo.sqlite")
        #expect(await Self.refusal(["report", "--db", path]) ==
                "no ledger at \(path) (start `tokenctl serve` or create a key first, or pass --db)")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("keys create notes a user or team named as an existing key's but for letter case (a report and budget apart)")
    func keyOwnerCaseNotes() {
        let existing = [APIKeyRecord(id: "key_1", secretHash: "h1", user: "bob", team: "research"),
                        APIKeyRecord(id: "key_2", secretHash: "h2", user: "BOB", team: nil)]
        #expect(Keys.Create.caseNotes(user: "Bob", team: "Research", existing: existing) == [
            "user 'Bob' is new; keys exist for 'BOB', 'bob': names are case-sensitive, so its calls are reported, and budgeted, apart",
            "team 'Research' is new; keys exist for 'research': names are case-sensitive, so its calls are reported, and budgeted, apart",
        ])
        #expect(Keys.Create.caseNotes(user: "bob", team: "research", existing: existing).isEmpty)
        #expect(Keys.Create.caseNotes(user: "carol", team: "ops", existing: existing).isEmpty)
    }

    @Test("a report into a directory, or of a file that is no ledger, says so plainly")
    func reportPathMistakes() async throws {
        let dir = try TemporaryDirectory()
        let db = dir.path()
        #expect(await Self.refusal(["keys", "create", "--user", "alice", "--db", db]) == nil)
        #expect(await Self.refusal(["report", "--db", db, "--out", dir.url.path]) ==
                "cannot write \(dir.url.path): it is a directory (--out names the file to write)")
        let csv = dir.path("export.csv")
        try "user,cost\nalice,1\n".write(toFile: csv, atomically: true, encoding: .utf8)
        let notALedger = await Self.refusal(["report", "--db", csv])
        #expect(notALedger?.hasSuffix("(the file is not a tokenctl ledger: --db names the SQLite file serve writes)") == true,
                "\(notALedger ?? "")")
    }

    @Test("demo without a price book (run outside the source tree) says where it looked and what to pass; nothing starts")
    func demoWithoutPolicies() async throws {
        let dir = try TemporaryDirectory()
        let policies = dir.path("nowhere")
        #expect(await Self.refusal(["demo", "--policies", policies]) ==
                "the demo reads its price book from \(policies)/prices.yaml, which does not exist: run it from tokenctl's source directory, or pass --policies DIR (a policy directory with a prices.yaml)")
    }

    @Test("a ledger path that cannot be one says why, in the system's words (not Foundation's)")
    func ledgerPathsThatCannotBe() async throws {
        let dir = try TemporaryDirectory()
        let file = dir.path("afile")
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        #expect(await Self.refusal(["keys", "create", "--user", "a", "--db", file + "/sub/l.sqlite"])
                == "cannot create the ledger's directory \(file)/sub (not a directory): create it, writable by this user, or pick another --db")
        #expect(await Self.refusal(["keys", "create", "--user", "a", "--db", dir.path("")])?
                .hasPrefix("--db \(dir.path("")) is a directory: name the ledger file in it") == true)
        #expect(await Self.refusal(["keys", "create", "--user", "a", "--db", dir.path("new/deeper/l.sqlite")]) == nil)
    }

    @Test("a report's period: one form at a time, a month that exists, a start before the end")
    func periods() async throws {
        let dir = try TemporaryDirectory()
        let db = dir.path()
        #expect(await Self.refusal(["keys", "create", "--user", "alice", "--db", db]) == nil)
        let report = ["report", "--db", db, "--policies", dir.path("none")]
        #expect(await Self.refusal(report + ["--period", "2026-01", "--since", "2026-01-02"]) ==
                "give either --period or --since/--until, not both")
        #expect(await Self.refusal(report + ["--since", "2026-01-02", "--until", "2026-01-01"]) ==
                "--since (2026-01-02) must be before --until (2026-01-01)")
        let month = await Self.refusal(report + ["--period", "2026-13"])
        #expect(month?.contains("is not a month (YYYY-MM, e.g. 2026-11) or last-month") == true, "\(month ?? "accepted")")
    }

    @Test("policy simulate refuses a start after the end, as report does")
    func simulatePeriod() async throws {
        let dir = try TemporaryDirectory()
        let db = dir.path()
        #expect(await Self.refusal(["keys", "create", "--user", "alice", "--db", db]) == nil)
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../policies").standardized.path
        #expect(await Self.refusal(["policy", "simulate", shipped, "--db", db, "--since", "2026-12-06", "--until", "2026-12-01"])
                == "--since (2026-12-06) must be before --until (2026-12-01)")
    }

    @Test("policy check --strict exits 2 on warnings (plans.yaml gone: every caller unlimited), 0 without")
    func strictPolicyCheck() throws {
        func exitCode(_ arguments: [String]) throws -> Int32 {
            var command = try TokenCtl.parseAsRoot(arguments)
            do { try command.run() } catch let exit as ExitCode { return exit.rawValue }
            return 0
        }
        let dir = try TemporaryDirectory()
        try #"""
            providers: { local: { dialect: openai, base_url: "http://127.0.0.1:9/v1" } }
            models: [{ match: "gpt-4o-mini", provider: local }]
            """#.write(toFile: dir.path("providers.yaml"), atomically: true, encoding: .utf8)
        try #"- { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", output: "0.60" }"#
            .write(toFile: dir.path("prices.yaml"), atomically: true, encoding: .utf8)
        let policies = dir.url.path
        #expect(try exitCode(["policy", "check", policies]) == 0)
        #expect(try exitCode(["policy", "check", policies, "--strict"]) == 2)
        try "plans: { small: { requests_per_minute: 60 } }\ndefaults: { plan: small }\n"
            .write(toFile: dir.path("plans.yaml"), atomically: true, encoding: .utf8)
        #expect(try exitCode(["policy", "check", policies, "--strict"]) == 0)
    }

    @Test("keys create, then a report of the ledger's calls as CSV into a file")
    func reportToFile() async throws {
        let dir = try TemporaryDirectory()
        let db = dir.path()
        #expect(await Self.refusal(["keys", "create", "--user", "alice", "--team", "research", "--db", db]) == nil)
        let writer = try LedgerWriter(path: db)
        #expect(appendAll((0..<4).map { sampleEntry($0) } + [sampleEntry(4, user: "bob", team: nil)], to: writer).isEmpty)
        writer.close()
        let out = dir.path("report.csv")
        #expect(await Self.refusal(["report", "--db", db, "--policies", dir.path("none"), "--since", "2025-01-01",
                                    "--until", "2025-01-02", "--format", "csv", "--out", out]) == nil)
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(whereSeparator: \.isNewline)  // CSV: CRLF
        #expect(lines.count == 3, "\(lines)")  // header, alice, bob
        #expect(lines.first?.hasPrefix("user,") == true)
        let alice = try #require(lines.first { $0.hasPrefix("alice,") })
        let bob = try #require(lines.first { $0.hasPrefix("bob,") })
        #expect(alice.split(separator: ",")[1] == "4" && bob.split(separator: ",")[1] == "1", "\(alice) / \(bob)")
    }
}
