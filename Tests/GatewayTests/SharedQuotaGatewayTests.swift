import Foundation
import Gateway
import Ledger
import Logging
import Metering
import NIOCore
import NIOPosix
import Policy
import PostgresLedger
import PostgresNIO
import Testing

/// Two gateways (replicas, each with its own SQLite ledger here) sharing their budgets through
/// PostgreSQL (`scripts/with-postgres.sh`; skipped without it). The PostgreSQL ledger is the
/// other half of issue 6: a minimal `calls` table stands in for it.
@Suite("Budgets shared by replicas (PostgreSQL)", .serialized)
struct SharedQuotaGatewayTests {
    static let url = ProcessInfo.processInfo.environment["TOKENCTL_TEST_POSTGRES"]

    /// A schema of the test's own, with a stand-in `calls` table, and the configuration that uses it.
    static func scratchSchema() async throws -> PostgresConnection.Configuration {
        let logger = Logger(label: "shared-quota-e2e")
        var configuration = try PostgresLocation(url: try #require(url)).connectionConfiguration
        let schema = "quota_e2e_\(UInt32.random(in: 0...UInt32.max))"
        let connection = try await PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(),
                                                              configuration: configuration, id: 0, logger: logger)
        try await connection.query("CREATE SCHEMA \(unescaped: schema)", logger: logger)
        try await connection.query("""
            CREATE TABLE \(unescaped: schema).calls (
                id text PRIMARY KEY, started_at int8 NOT NULL, "user" text, team text, outcome text NOT NULL,
                cost_pd int8 NOT NULL, input_tokens int8 NOT NULL, cached_input_tokens int8 NOT NULL,
                cache_write_tokens int8 NOT NULL, output_tokens int8 NOT NULL)
            """, logger: logger)
        try await connection.close()
        configuration.options.additionalStartupParameters = [("search_path", schema)]
        return configuration
    }

    @Test("200 concurrent calls over two replicas against a budget that fits 7 worst cases: 7 admitted in all, the same refusal as one node, nothing left held",
          .enabled(if: url != nil, "SKIPPED: no PostgreSQL (run the tests through scripts/with-postgres.sh)"))
    func budgetHoldsAcrossReplicas() async throws {
        let n = 7
        let budget = Money(picodollars: Int64(n) * PlanEnforcementTests.exactCost.picodollars)
        let configuration = try await Self.scratchSchema()
        let logger = Logger(label: "shared-quota-e2e")
        let books = (0..<2).map { SharedQuotaBook(configuration: configuration, replica: "e2e-\($0)", logger: logger) }
        let replicas = try books.map { book in
            try ProxyHarness(plansYAML: """
                defaults: { plan: metered }
                plans: { metered: { budget: { daily_usd: "\(budget.formatted(decimals: 6))" } } }
                """, providerHeaders: ["x-fake-chunks": "50", "x-fake-first-byte-delay-ms": "200"], sharedQuotas: book)
        }
        defer { for replica in replicas { replica.shutdown() } }
        let answers = try await withThrowingTaskGroup(of: ReceivedResponse.self) { group in
            for i in 0..<200 {
                let replica = replicas[i % 2]
                group.addTask {
                    try await replica.post("/v1/chat/completions", key: replica.aliceKey,
                                           json: PlanEnforcementTests.exactCall, requestID: "sq-\(i)")
                }
            }
            return try await group.reduce(into: [ReceivedResponse]()) { $0.append($1) }
        }
        #expect(answers.filter { $0.status == 200 }.count == n)
        #expect(answers.filter { $0.status == 429 }.count == 200 - n)
        let refusal = try #require(answers.first { $0.status == 429 })
        #expect(refusal.headers.contains { $0.0.lowercased() == "x-should-retry" && $0.1 == "false" })
        let body = String(decoding: refusal.chunks.joined(), as: UTF8.self)
        #expect(body.contains("insufficient_quota") && body.contains("user alice's daily budget"))
        let admitted = try #require(answers.first { $0.status == 200 })
        #expect(admitted.headers.contains { $0.0 == "x-tokenctl-budget-remaining-usd" })

        let rows = try replicas.flatMap { try $0.allRows() }
        #expect(rows.count == 200)
        var spent = Money.Total()
        for row in rows { spent.add(row.cost) }
        #expect(spent.picodollars == Int128(budget.picodollars))
        // Settlements go out after each row's commit: give them a moment.
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        var open = try await books[0].openHolds(on: loop).get()
        for _ in 0..<100 where open > 0 {
            try await Task.sleep(for: .milliseconds(20))
            open = try await books[0].openHolds(on: loop).get()
        }
        #expect(open == 0)
        let day = CalendarPeriod(timeZone: replicas[0].server.policy.plans.timeZone)
            .interval(of: .day, containing: UnixTime.nowMicros())
        let counter = try await books[0].counter(scope: .user("alice"), period: .day, periodStart: day.start, on: loop).get()
        #expect(counter?.spent == Int128(budget.picodollars))
        #expect(counter?.reserved == 0)
        #expect(replicas.allSatisfy { $0.server.openQuotaReservations == 0 })
        // Each replica's admin API shows the shared use, not its own share of it.
        for replica in replicas {
            let health = try await TestHTTPClient.send(port: replica.port, method: .GET, path: "/admin/api/health",
                                                       headers: [("authorization", "Bearer \(replica.adminKey)")])
            let json = try #require(try JSONSerialization.jsonObject(with: Data(health.body)) as? [String: Any])
            let budgets = try #require(json["budgets"] as? [[String: Any]])
            let alice = try #require(budgets.first { $0["name"] as? String == "alice" && $0["period"] as? String == "day" })
            #expect(alice["used_usd"] as? String == budget.formatted())
        }
    }

    @Test("when the shared budget state fails, calls are refused 503 quota_state_unavailable in the caller's dialect, and nothing goes upstream",
          .enabled(if: url != nil, "SKIPPED: no PostgreSQL (run the tests through scripts/with-postgres.sh)"))
    func failsClosedWithoutTheSharedState() async throws {
        let configuration = try await Self.scratchSchema()
        let logger = Logger(label: "shared-quota-e2e")
        let book = SharedQuotaBook(configuration: configuration, replica: "e2e-failing", logger: logger)
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: metered }
            plans: { metered: { budget: { daily_usd: "5" } } }
            """, sharedQuotas: book)
        defer { h.shutdown() }
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: PlanEnforcementTests.exactCall,
                                 requestID: "ok-1").status == 200)
        // The reservation function disappears (as if the database were broken).
        let admin = try await PostgresConnection.connect(on: MultiThreadedEventLoopGroup.singleton.next(),
                                                         configuration: configuration, id: 0, logger: logger)
        try await admin.query("DROP FUNCTION tokenctl_quota_reserve_many", logger: logger)
        try await admin.close()
        let openai = try await h.post("/v1/chat/completions", key: h.aliceKey, json: PlanEnforcementTests.exactCall,
                                      requestID: "down-1")
        #expect(openai.status == 503)
        let openaiBody = String(decoding: openai.chunks.joined(), as: UTF8.self)
        #expect(openaiBody.contains(#""code":"quota_state_unavailable""#), "\(openaiBody)")
        #expect(try h.row("down-1")?.outcome == .refusedUnavailable)  // a refusal: nothing went upstream
        let anthropic = try await h.post("/v1/messages", key: h.aliceKey, dialect: "anthropic",
                                         json: #"{"model":"claude-3-5-haiku-latest","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#,
                                         requestID: "down-2")
        #expect(anthropic.status == 503)
        #expect(String(decoding: anthropic.chunks.joined(), as: UTF8.self).contains(#""type":"overloaded_error""#))
        #expect(h.fake.requestCount == 1)
        #expect(h.server.callsInFlight == 0, "the local limits were given back")
    }

    @Test("a start that fails after preparing the shared budget state shuts it down: connections closed, heartbeat removed",
          .enabled(if: url != nil, "SKIPPED: no PostgreSQL (run the tests through scripts/with-postgres.sh)"))
    func failedStartShutsTheSharedStateDown() async throws {
        let configuration = try await Self.scratchSchema()
        let logger = Logger(label: "shared-quota-e2e")
        let book = SharedQuotaBook(configuration: configuration, replica: "e2e-failed-start", logger: logger)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokenctl-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try """
            providers:
              openai: { dialect: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: E2E_PROVIDER_KEY }
            models:
              - { match: "gpt-*", provider: openai }
            """.write(to: directory.appendingPathComponent("providers.yaml"), atomically: true, encoding: .utf8)
        try ProxyHarness.prices.write(to: directory.appendingPathComponent("prices.yaml"), atomically: true, encoding: .utf8)
        let environment = ["E2E_PROVIDER_KEY": "sk-test"]
        let policy = try PolicyLoader.load(directory: directory.path, environment: environment)
        // The port is taken: binding fails, after the shared state was prepared.
        let taken = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { taken.close(promise: nil) }
        #expect(throws: (any Error).self) {
            try GatewayServer.start(configuration: GatewayConfiguration(port: taken.localAddress?.port ?? 0, eventLoopThreads: 1),
                                    policy: policy, environment: environment,
                                    databasePath: directory.appendingPathComponent("ledger.sqlite").path,
                                    journalDirectory: directory.path, sharedQuotas: book, logger: logger)
        }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        await #expect(throws: SharedQuotaError.self) { try await book.heartbeat(on: loop).get() }
        let admin = try await PostgresConnection.connect(on: loop, configuration: configuration, id: 0, logger: logger)
        let rows = try await admin.query("SELECT count(*) FROM quota_replicas WHERE replica = 'e2e-failed-start'",
                                         logger: logger).collect()
        try await admin.close()
        #expect(try rows.first?.decode(Int.self) == 0)
    }
}
