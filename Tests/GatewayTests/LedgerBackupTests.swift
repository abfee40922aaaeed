import Foundation
import Ledger
import LedgerTestSupport
import Testing
@testable import Gateway

/// `tokenctl ledger backup`: a consistent copy of a ledger a gateway is writing.
@Suite("Ledger backup")
struct LedgerBackupTests {
    @Test("a backup taken while serving holds every committed call and the keys, needs no WAL, and opens as a ledger")
    func backupWhileServing() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
        for i in 0..<20 {
            #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "b-\(i)").status == 200)
        }
        h.server.flushLedger()
        // The calls are in the WAL: the main file alone would not have them.
        let wal = try FileManager.default.attributesOfItem(atPath: h.dbPath + "-wal")[.size] as? NSNumber
        #expect((wal?.intValue ?? 0) > 0)

        let target = h.directory.appendingPathComponent("backup.sqlite").path
        let outcome = try LedgerBackup.run(path: h.dbPath, to: target)
        #expect(outcome.calls == 20 && outcome.keys == 5 && outcome.bytes > 0)
        #expect(!FileManager.default.fileExists(atPath: target + "-wal"))
        let reader = try LedgerReader(path: target)
        defer { reader.close() }
        #expect(try reader.entry(requestId: "b-19")?.outcome == .ok)

        // The gateway kept serving and recording meanwhile; a second backup to the same file is refused.
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "after").status == 200)
        #expect(throws: LedgerBackup.Refusal.self) { try LedgerBackup.run(path: h.dbPath, to: target) }
    }
}

@Suite("Ledger file deleted or replaced while serving")
struct LedgerFileGoneTests {
    @Test("the ledger file deleted under the gateway: it fails closed and says so; moved back, it serves again")
    func deletedThenRestored() async throws {
        let logs = LogCapture()
        let h = try ProxyHarness(logger: logs.logger)
        defer { h.shutdown() }
        let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "before").status == 200)
        let aside = h.dbPath + ".aside"
        try FileManager.default.moveItem(atPath: h.dbPath, toPath: aside)  // as `rm` does to the name
        var health = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/healthz")
        for _ in 0..<60 where health.status == 200 {
            try await Task.sleep(for: .milliseconds(100))
            health = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/healthz")
        }
        #expect(health.status == 503 && health.text.contains("deleted or replaced while open"), "\(health.text)")
        #expect(!health.text.contains(h.dbPath))  // no path for callers: the log has it
        let refused = try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "while-gone")
        #expect(refused.status == 503 && refused.text.contains("ledger_unavailable"))
        #expect(logs.text.contains("the ledger file \(h.dbPath) was deleted while the gateway had it open"))

        try FileManager.default.moveItem(atPath: aside, toPath: h.dbPath)
        for _ in 0..<60 where health.status != 200 {
            try await Task.sleep(for: .milliseconds(100))
            health = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/healthz")
        }
        #expect(health.status == 200)
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "after").status == 200)
        #expect(try h.row("after")?.outcome == .ok && h.row("before")?.outcome == .ok)
        #expect(logs.text.contains("the ledger file is back: calls are accepted"))
    }

    @Test("a file put in the ledger's place is not the open one")
    func identity() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path()
        try Data("a".utf8).write(to: URL(fileURLWithPath: path))
        let identity = try #require(LedgerFileIdentity(path: path))
        #expect(identity.problem() == nil)
        try Data("b".utf8).write(to: URL(fileURLWithPath: path + ".new"))
        _ = rename(path + ".new", path)
        #expect(identity.problem()?.contains("was replaced") == true)
        try FileManager.default.removeItem(atPath: path)
        #expect(identity.problem()?.contains("was deleted") == true)
    }
}
