import Foundation
import Gateway
import Ledger
import Logging
import Policy
import Testing

/// Start markers (`<ledger>.inflight-<pid>`): calls a crashed process had in flight are recorded
/// as `interrupted` at the next start; a row that exists wins; a live process's file is left alone.
@Suite("Crash recovery")
struct CrashRecoveryTests {
    static func marker(_ id: String, requestId: String, user: String) -> String {
        #"{"id":"\#(id)","requestId":"\#(requestId)","startedAt":1795000000000000,"keyId":"key_000000000001","user":"\#(user)","team":null,"dialect":"openai","route":"chat.completions","provider":"openai","model":"gpt-4o-mini","stream":true,"plan":null}"#
    }

    /// The journal files of this ledger (data files, not their locks).
    static func journals(_ dbPath: String) -> [String] {
        let directory = (dbPath as NSString).deletingLastPathComponent
        let prefix = (dbPath as NSString).lastPathComponent + ".inflight-"
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix(prefix) && !$0.hasSuffix(".lock") && !$0.hasSuffix(".tmp") }
            .map { directory + "/" + $0 }
    }

    @Test("markers of a dead process become interrupted rows; existing rows and live processes' files are kept")
    func recoversMarkers() async throws {
        let h = try ProxyHarness()
        let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "done").status == 200)
        let done = try #require(try h.row("done"))
        try h.server.shutdown()
        // The server removed its own journal on a clean stop.
        #expect(Self.journals(h.dbPath).isEmpty)

        // A gateway that died: its journal's lock is free.
        let dead = h.dbPath + ".inflight-deadbeef"
        try ([Self.marker("call_lost_1", requestId: "lost-1", user: "alice"),
              Self.marker(done.id, requestId: "done", user: "alice")].joined(separator: "\n") + "\n")
            .write(toFile: dead, atomically: true, encoding: .utf8)
        #expect(FileManager.default.createFile(atPath: dead + ".lock", contents: nil))
        // A gateway still running (here: this process holds the lock, as a live gateway does).
        let live = h.dbPath + ".inflight-alive"
        try (Self.marker("call_live_1", requestId: "live-1", user: "bob") + "\n").write(toFile: live, atomically: true, encoding: .utf8)
        let liveLock = open(live + ".lock", O_CREAT | O_RDWR, 0o644)
        #expect(flock(liveLock, LOCK_EX | LOCK_NB) == 0)
        defer { close(liveLock) }

        var logger = Logger(label: "recovery")
        logger.logLevel = .error
        let restarted = try GatewayServer.start(configuration: GatewayConfiguration(port: 0, eventLoopThreads: 1),
                                                policy: h.server.policy, environment: h.environment,
                                                databasePath: h.dbPath, logger: logger)
        let lost = try #require(try h.row("lost-1"))
        #expect(lost.outcome == .interrupted && lost.status == 0 && lost.user == "alice" && lost.stream)
        #expect(lost.errorMessage?.contains("recorded at the next start") == true)
        #expect(try h.row("done")?.outcome == .ok)                                   // the row wins
        #expect(try h.allRows().filter { $0.requestId == "done" }.count == 1)
        #expect(try h.row("live-1") == nil)                                         // a running process's calls
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(!FileManager.default.fileExists(atPath: dead + ".lock"))
        #expect(FileManager.default.fileExists(atPath: live))
        try restarted.shutdown()
        try? FileManager.default.removeItem(atPath: live)
        h.shutdown()
    }

    @Test("a call in flight is in the journal file while it runs, and out of it once recorded")
    func journalFollowsCalls() async throws {
        // FakeLLM holds the answer until the journal was seen (a fixed delay could end first on
        // a loaded machine).
        let h = try ProxyHarness(providerHeaders: ["x-fake-hold": "journaled"])
        defer { h.shutdown() }
        let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
        async let answer = h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "journaled")
        var text = ""
        var file = ""
        // The call cannot end before its release: the journal (rewritten every 0.2 s once the
        // call started) is read until it shows the call, for as long as a loaded machine may take
        // to get the request to the gateway (in a full suite on two cores, over 60 s once).
        let deadline = ContinuousClock.now + .seconds(120)
        while !text.contains("journaled"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            file = Self.journals(h.dbPath).first ?? ""
            text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        }
        let held = h.fake.holding("journaled")
        h.fake.release("journaled")
        let directory = (h.dbPath as NSString).deletingLastPathComponent
        #expect(text.contains(#""requestId":"journaled""#),
                "FakeLLM held \(held); journals: \(Self.journals(h.dbPath)); files: \((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])")
        #expect(try await answer.status == 200)
        let row = try #require(try h.row("journaled"))
        #expect(text.contains(#""id":"\#(row.id)""#))   // the marker names the row's id
        let removed = ContinuousClock.now + .seconds(30)
        while FileManager.default.fileExists(atPath: file), ContinuousClock.now < removed { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!FileManager.default.fileExists(atPath: file))
    }
}
