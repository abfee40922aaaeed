import CSQLite
import Foundation
import Ledger
import Testing
@testable import Gateway

/// The ledger stops taking writes (here: another process holds its write lock past the busy
/// timeout, as a full disk or a read-only file would make commits fail). The gateway fails
/// closed: new calls get 503 at once, the call already accepted is recorded once the ledger
/// recovers, and service resumes by itself.
@Suite("Ledger faults")
struct LedgerFaultTests {
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#

    /// Holds the database's write lock, as another writer would.
    final class WriteLock {
        private var db: OpaquePointer?
        init(path: String) throws {
            guard sqlite3_open(path, &db) == SQLITE_OK, sqlite3_exec(db, "BEGIN IMMEDIATE", nil, nil, nil) == SQLITE_OK else {
                throw POSIXError(.EBUSY)
            }
        }
        func release() {
            sqlite3_exec(db, "COMMIT", nil, nil, nil)
            sqlite3_close(db)
            db = nil
        }
    }

    @Test("two failed shared quota heartbeats in a row fail the ledger closed until one gets through")
    func heartbeatFailure() {
        struct Unreachable: Error {}
        let logs = LogCapture()
        let health = LedgerHealth(logger: logs.logger)
        #expect(!health.isFailing)
        health.heartbeat(Unreachable())
        #expect(!health.isFailing)  // one failure may be a busy connection
        health.heartbeat(Unreachable())
        #expect(health.isFailing && health.current?.attempts == 2)
        #expect(health.refusal.status == 503)
        health.heartbeat(nil)
        #expect(!health.isFailing)
        health.heartbeat(nil)
        health.heartbeat(Unreachable())  // one alone: neither failing nor logged
        health.heartbeat(nil)
        #expect(logs.text.components(separatedBy: "the ledger is failing: PostgreSQL does not answer").count == 2)
        #expect(logs.text.components(separatedBy: "PostgreSQL answers again: calls are accepted").count == 2)
    }

    @Test("callers and /healthz are not told where the PostgreSQL ledger is")
    func failureWithoutLocation() {
        let message = "postgres://tokenctl@127.0.0.1:33541/tokenctl: connectionError (see postgresql://a@b/c, then more)"
        #expect(LedgerHealth.Failure.withoutLocations(message) == "PostgreSQL: connectionError (see PostgreSQL, then more)")
        #expect(LedgerHealth.Failure.withoutLocations("database is locked") == "database is locked")
        #expect(LedgerHealth.Failure.withoutLocations("connect to postgresql://u:secret@db/x failed; retried postgres://u@db/x")
                == "connect to PostgreSQL failed; retried PostgreSQL")
    }

    @Test("while commits fail: 503 at once, /healthz degraded; accepted rows are kept and land; service resumes")
    func failClosed() async throws {
        let logs = LogCapture()
        let h = try ProxyHarness(logger: logs.logger)
        defer { h.shutdown() }
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "before").status == 200)

        let lock = try WriteLock(path: h.dbPath)
        // Accepted while the ledger still looked healthy: answered once its row is in the journal,
        // committed to SQLite once the lock goes.
        async let accepted = h.post("/v1/chat/completions", key: h.aliceKey, json: Self.chat, requestID: "accepted")
        var health = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/healthz")
        for _ in 0..<300 where health.status == 200 {
            try await Task.sleep(for: .milliseconds(50))
            health = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/healthz")
        }
        #expect(health.status == 503)
        #expect(health.text.contains(#""ledger":{"status":"failing""#))

        let refused = try await h.post("/v1/chat/completions", key: h.bobKey, json: Self.chat, requestID: "refused")
        #expect(refused.status == 503)
        #expect(refused.header("retry-after") == "5")
        #expect(refused.text.contains("ledger_unavailable"))
        let anthropic = try await h.post("/v1/messages", key: h.bobKey, dialect: "anthropic",
                                         json: #"{"model":"claude-3-5-haiku-latest","max_tokens":5,"messages":[]}"#,
                                         requestID: "refused-2")
        #expect(anthropic.status == 503 && anthropic.text.contains("overloaded_error"))

        lock.release()
        let answer = try await accepted
        #expect(answer.status == 200 && answer.complete)
        #expect(try h.row("accepted")?.outcome == .ok)      // nothing accepted is lost
        #expect(try h.row("refused") == nil)                 // refused while failing: not recorded
        #expect(try await TestHTTPClient.send(port: h.port, method: .GET, path: "/healthz").status == 200)
        #expect(try await h.post("/v1/chat/completions", key: h.bobKey, json: Self.chat, requestID: "after").status == 200)
        let metrics = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/metrics").text
        #expect(metrics.contains(#"reason="ledger_unavailable""#))
        // The operator's log has each turn once, however many commits failed meanwhile.
        let lines = logs.text.split(separator: "\n")
        #expect(lines.filter { $0.hasPrefix("error") && $0.contains("the ledger is failing") }.count == 1, "\(logs.text)")
        #expect(lines.filter { $0.hasPrefix("notice") && $0.contains("the ledger commits again") }.count == 1, "\(logs.text)")
    }
}
