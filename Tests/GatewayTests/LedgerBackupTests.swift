import Foundation
import Ledger
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
