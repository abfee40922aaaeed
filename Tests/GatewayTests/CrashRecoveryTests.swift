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

    /// A pid that surely belongs to no running process: a child that has exited.
    static func deadPID() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }

    @Test("markers of a dead process become interrupted rows; existing rows and live processes' files are kept")
    func recoversMarkers() async throws {
        let h = try ProxyHarness()
        let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "done").status == 200)
        let done = try #require(try h.row("done"))
        try h.server.shutdown()
        // The server removed its own journal on a clean stop.
        let own = h.dbPath + ".inflight-\(getpid())"
        #expect(!FileManager.default.fileExists(atPath: own))

        let dead = h.dbPath + ".inflight-\(try Self.deadPID())"
        try ([Self.marker("call_lost_1", requestId: "lost-1", user: "alice"),
              Self.marker(done.id, requestId: "done", user: "alice")].joined(separator: "\n") + "\n")
            .write(toFile: dead, atomically: true, encoding: .utf8)
        let live = h.dbPath + ".inflight-\(getppid())"
        try (Self.marker("call_live_1", requestId: "live-1", user: "bob") + "\n").write(toFile: live, atomically: true, encoding: .utf8)

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
        #expect(FileManager.default.fileExists(atPath: live))
        try restarted.shutdown()
        try? FileManager.default.removeItem(atPath: live)
        h.shutdown()
    }

    @Test("a call in flight is in the journal file while it runs, and out of it once recorded")
    func journalFollowsCalls() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-first-byte-delay-ms": "1500"])
        defer { h.shutdown() }
        let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
        async let answer = h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "journaled")
        let file = h.dbPath + ".inflight-\(getpid())"
        var text = ""
        for _ in 0..<100 where !text.contains("journaled") {
            try await Task.sleep(for: .milliseconds(20))
            text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        }
        #expect(text.contains(#""requestId":"journaled""#))
        #expect(try await answer.status == 200)
        let row = try #require(try h.row("journaled"))
        #expect(text.contains(#""id":"\#(row.id)""#))   // the marker names the row's id
        for _ in 0..<100 where FileManager.default.fileExists(atPath: file) { try await Task.sleep(for: .milliseconds(20)) }
        #expect(!FileManager.default.fileExists(atPath: file))
    }
}
