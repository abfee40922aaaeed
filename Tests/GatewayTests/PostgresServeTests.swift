import Foundation
import Ledger
import Metering
@testable import PostgresLedger
import Testing

/// The proxy serving with `--db postgres://…` (the server `scripts/with-postgres.sh` starts).
@Suite("Serving with a PostgreSQL ledger")
struct PostgresServeTests {
    static let url = ProcessInfo.processInfo.environment["TOKENCTL_TEST_POSTGRES"]

    @Test("a proxied call is recorded in PostgreSQL, keys come from there, reports read it",
          .enabled(if: url != nil, "SKIPPED: no PostgreSQL (run the tests through scripts/with-postgres.sh)"))
    func recordsACallInPostgres() async throws {
        let base = try PostgresLocation(url: try #require(Self.url))
        let admin = try PostgresSession(base)
        let name = "gw_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try admin.execute("CREATE DATABASE \(name)")
        defer {
            try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
            admin.close()
        }
        let url = "postgres://\(base.user)@\(base.host):\(base.port)/\(name)"
        let h = try ProxyHarness(gatewayYAML: "admin_api: { manage_keys: true }", database: url)
        defer { h.shutdown() }
        let answer = try await h.post("/v1/chat/completions", key: h.aliceKey,
                                      json: #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#,
                                      requestID: "pg-e2e-1")
        #expect(answer.status == 200)
        _ = try await h.post("/v1/chat/completions", key: "tk-bad", json: #"{"model":"gpt-4o-mini","messages":[]}"#,
                             requestID: "pg-e2e-2")
        let row = try #require(try h.row("pg-e2e-1"))
        #expect(row.user == "alice")
        #expect(row.outcome == .ok)
        #expect(row.cost > .zero)
        #expect(try h.row("pg-e2e-2")?.outcome == .refusedAuth)
        let reader = try PostgresLedgerReader(location: try PostgresLocation(url: url))
        defer { reader.close() }
        let report = try reader.report(ReportQuery(since: 0, until: .max, groupBy: [.user]))
        #expect(report.totals.requests == 2)
        #expect(report.totals.cost == { var t = Money.Total(); t.add(row.cost); return t }())
        // A key made and revoked through the admin API lives in PostgreSQL too.
        let made = try await TestHTTPClient.send(port: h.port, method: .POST, path: "/admin/api/keys",
                                                 headers: [("authorization", "Bearer \(h.adminKey)")],
                                                 body: Array(#"{"user":"dave"}"#.utf8))
        #expect(made.status == 201)
        let key = try jsonObject(made)
        let secret = try #require(key["secret"] as? String), id = try #require(key["id"] as? String)
        #expect(try await h.post("/v1/chat/completions", key: secret, json: #"{"model":"gpt-4o-mini","messages":[]}"#,
                                 requestID: "pg-e2e-3").status == 200)
        let keys = try PostgresKeyStore(location: try PostgresLocation(url: url))
        defer { keys.close() }
        #expect(try keys.list().first { $0.id == id }?.user == "dave")
        let revoked = try await TestHTTPClient.send(port: h.port, method: .DELETE, path: "/admin/api/keys/\(id)",
                                                    headers: [("authorization", "Bearer \(h.adminKey)")])
        #expect(revoked.status == 200)
        #expect(try keys.list().first { $0.id == id }?.isRevoked == true)
        #expect(try await h.post("/v1/chat/completions", key: secret, json: #"{"model":"gpt-4o-mini","messages":[]}"#,
                                 requestID: "pg-e2e-4").status == 401)
        // No SQLite file was made: the journal went to the directory given.
        let files = try FileManager.default.contentsOfDirectory(atPath: h.directory.path)
        #expect(!files.contains { $0.hasSuffix(".sqlite") })
    }
}
