import Foundation
import Ledger
import LedgerTestSupport
import Logging
import Policy
import Testing
@testable import Gateway

/// One server per SQLite ledger: a second one would count budgets apart from the first.
@Suite("One server per SQLite ledger")
struct LedgerServerLockTests {
    func start(_ h: ProxyHarness) throws -> GatewayServer {
        let policy = try PolicyLoader.load(directory: h.policyDirectory.path, environment: h.environment)
        return try GatewayServer.start(configuration: GatewayConfiguration(port: 0, eventLoopThreads: 1),
                                       policy: policy, environment: h.environment, databasePath: h.dbPath,
                                       journalDirectory: h.directory.path, logger: Logger(label: "second"))
    }

    @Test("a second server on the ledger is refused, naming the first; once the first stops, the next one starts")
    func secondServerRefused() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let served = try await h.post("/v1/chat/completions", key: h.aliceKey, json: #"{"model":"gpt-4o-mini","messages":[]}"#,
                                      requestID: "before")
        #expect(served.status == 200)
        let refused = #expect(throws: LedgerServerLock.Held.self) { try start(h) }
        #expect(refused?.holderPID == "\(getpid())")
        #expect(refused?.description.contains("already serves the SQLite ledger \(h.dbPath)") == true)
        #expect(refused?.description.contains("PostgreSQL") == true)
        // The refused start left the first alone: it still serves and records.
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: #"{"model":"gpt-4o-mini","messages":[]}"#,
                                 requestID: "after").status == 200)
        h.server.flushLedger()
        #expect(try h.row("after")?.outcome == .ok)

        try h.server.shutdown()
        let next = try start(h)
        try next.shutdown()
    }

    @Test("the lock itself: held until released, the holder's pid in the file")
    func lock() throws {
        let directory = try TemporaryDirectory()
        let ledger = directory.path()
        #expect(FileManager.default.createFile(atPath: ledger, contents: Data()))
        let first = try LedgerServerLock(ledgerPath: ledger)
        #expect(throws: LedgerServerLock.Held.self) { try LedgerServerLock(ledgerPath: ledger) }
        // A symlink to the ledger names the same lock (a verification trial's way past it).
        let link = directory.path("link.sqlite")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: ledger)
        #expect(throws: LedgerServerLock.Held.self) { try LedgerServerLock(ledgerPath: link) }
        first.release()
        first.release()  // twice is harmless
        let second = try LedgerServerLock(ledgerPath: ledger)
        second.release()
        #expect(throws: LedgerServerLock.Unavailable.self) {
            try LedgerServerLock(ledgerPath: directory.path("missing/ledger.sqlite"))
        }
    }
}
