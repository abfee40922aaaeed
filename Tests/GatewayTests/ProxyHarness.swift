import FakeLLM
import FakeLLMTLS
import Foundation
import Gateway
import Ledger
import Logging
import Policy
import PostgresLedger

/// A real tokenctl in front of a real FakeLLM, on ephemeral loopback ports, with a real SQLite
/// ledger in a temporary directory (or the PostgreSQL ledger `database` names) and keys (alice@research, bob without a team, carol@research,
/// a service key, an admin key).
final class ProxyHarness: Sendable {
    let fake: FakeLLMServer
    let server: GatewayServer
    let directory: URL
    /// The `--db` value: the SQLite file, or a `postgres://` URL.
    let dbPath: String
    let policyDirectory: URL
    let environment: [String: String]
    let aliceKey: String
    let bobKey: String
    /// Alice's team mate.
    let carolKey: String
    /// A service key that may name its end users (when plans.yaml allows `svc-*`).
    let serviceKey: String
    /// An admin key (user "ops"): the admin API and dashboard only.
    let adminKey: String
    let providerKey = "provider-secret-\(UInt32.random(in: 0...UInt32.max))"

    var port: Int { server.port }

    /// Prices with awkward decimals so that exactness is tested, per 1M tokens.
    static let prices = """
        - { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", cached_input: "0.075", output: "0.6", web_search_preview: "25", source: test }
        - { model: "gpt-4o-mini", effective_from: "2020-01-01", input: "9", cached_input: "9", output: "9", source: "an older price that must not apply" }
        - { model: "o4-mini", effective_from: "2025-04-16", input: "1.1", cached_input: "0.275", output: "4.4", source: test }
        - { model: "text-embedding-3-small", effective_from: "2024-01-25", input: "0.02", output: "0", source: test }
        - { model: "claude-3-5-haiku-*", effective_from: "2024-11-04", input: "0.8", cached_input: "0.08", cache_write: "1", output: "4", source: test }
        - { model: "gpt-quota", effective_from: "2024-01-01", input: "1", output: "1", source: "1 µ$ a token, for exact budgets" }
        - { model: "gpt-exact", effective_from: "2024-01-01", input: "0", output: "1", source: "output only: worst case = actual when the output cap is reached" }
        - { model: "claude-sonnet-4-*", effective_from: "2025-05-22", input: "3", cached_input: "0.3", cache_write: "3.75", output: "15", source: test }
        - { model: "gpt-4o-mini", tier: priority, effective_from: "2024-07-18", input: "0.25", cached_input: "0.125", output: "1", source: test }
        - { model: "gpt-audio", effective_from: "2025-08-28", input: "2.5", output: "10", audio_input: "32", audio_output: "64.5", source: test }
        - { model: "claude-opus-4-6", effective_from: "2025-11-01", input: "5", cached_input: "0.5", cache_write: "6.25", output: "25", us_only: "1.1", source: test }
        - { model: "claude-opus-4-6", tier: fast, effective_from: "2025-11-01", input: "30", cached_input: "3", cache_write: "37.5", output: "150", source: "test: takes the standard entry's us_only" }
        - { model: "claude-sonnet-4-*", above_input_tokens: 200000, effective_from: "2025-05-22", input: "6", cached_input: "0.6", cache_write: "7.5", output: "22.5", source: test }
        """

    /// `providerHeaders` are static upstream headers (a providers.yaml feature) — tests use them to
    /// turn FakeLLM's knobs (cached tokens, failures) since client headers are not forwarded.
    /// `providerOptions` are extra providers.yaml fields for both providers (e.g. `idle_timeout_ms: 200`).
    init(gatewayYAML: String = "", plansYAML: String = "", providerHeaders: [String: String] = [:],
         providerOptions: String = "",
         providersYAML: String? = nil, providersForFake: ((_ baseURL: String) -> String)? = nil,
         fakeConfiguration: FakeLLMConfiguration = .init(), fakeTLS: FakeTLS? = nil,
         database: String? = nil, sharedQuotas: SharedQuotaBook? = nil, logger: Logger? = nil) throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("tokenctl-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var fakeConfiguration = fakeConfiguration
        fakeConfiguration.requiredAPIKey = providerKey
        if let fakeTLS { fakeConfiguration.transport = fakeTLS }
        fake = try FakeLLMServer.start(fakeConfiguration)

        let policies = directory.appendingPathComponent("policies")
        policyDirectory = policies
        try FileManager.default.createDirectory(at: policies, withIntermediateDirectories: true)
        // An HTTPS fake's CA, for a test's `ca_file: fake-ca.pem`.
        try fakeTLS?.writeCertificateAuthority(to: policies.appendingPathComponent("fake-ca.pem").path)
        var headers = providerHeaders.isEmpty ? ""
            : ", headers: {" + providerHeaders.map { "\"\($0.key)\": \"\($0.value)\"" }.joined(separator: ", ") + "}"
        if !providerOptions.isEmpty { headers += ", " + providerOptions }
        try (providersYAML ?? providersForFake?(fake.baseURL) ?? """
            providers:
              openai:    { dialect: openai,    base_url: "\(fake.baseURL)/v1", api_key_env: E2E_PROVIDER_KEY\(headers) }
              anthropic: { dialect: anthropic, base_url: "\(fake.baseURL)",    api_key_env: E2E_PROVIDER_KEY\(headers) }
            models:
              - { match: "gpt-*", provider: openai }
              - { match: "o4-*", provider: openai }
              - { match: "text-embedding-*", provider: openai }
              - { match: "claude-*", provider: anthropic }
            """).write(to: policies.appendingPathComponent("providers.yaml"), atomically: true, encoding: .utf8)
        try Self.prices.write(to: policies.appendingPathComponent("prices.yaml"), atomically: true, encoding: .utf8)
        if !plansYAML.isEmpty {
            try plansYAML.write(to: policies.appendingPathComponent("plans.yaml"), atomically: true, encoding: .utf8)
        }
        // The read deadlines (60 s by default) stay out of tests that are not about them: with
        // every suite started at once on two cores, a test can wait longer than that between
        // opening its connection and sending on it, and the server closed it as idle.
        var gatewayYAML = gatewayYAML.isEmpty || gatewayYAML.hasSuffix("\n") ? gatewayYAML : gatewayYAML + "\n"
        for key in ["header_timeout_ms", "body_timeout_ms"] where !gatewayYAML.contains(key) {
            gatewayYAML += "\(key): 600000\n"
        }
        try gatewayYAML.write(to: policies.appendingPathComponent("gateway.yaml"), atomically: true, encoding: .utf8)
        environment = ["E2E_PROVIDER_KEY": providerKey]
        let policy = try PolicyLoader.load(directory: policies.path, environment: environment)

        dbPath = database ?? directory.appendingPathComponent("ledger.sqlite").path
        let keys = try LedgerBackend(dbPath).openKeys()
        func makeKey(_ user: String, _ team: String?, admin: Bool = false) throws -> String {
            let (id, secret) = APIKeySecret.generate()
            try keys.insert(APIKeyRecord(id: id, secretHash: APIKeySecret.hash(secret), user: user, team: team,
                                         createdAt: UnixTime.nowMicros(), admin: admin))
            return secret
        }
        aliceKey = try makeKey("alice", "research")
        bobKey = try makeKey("bob", nil)
        carolKey = try makeKey("carol", "research")
        serviceKey = try makeKey("svc-chat", "support")
        adminKey = try makeKey("ops", nil, admin: true)
        keys.close()

        var logger = logger ?? Logger(label: "e2e")
        if logger.logLevel > .warning { logger.logLevel = .warning }
        server = try GatewayServer.start(configuration: GatewayConfiguration(port: 0, eventLoopThreads: 2),
                                         policy: policy, policyDirectory: policies.path, environment: environment,
                                         databasePath: dbPath, journalDirectory: directory.path,
                                         sharedQuotas: sharedQuotas, logger: logger)
    }

    /// Replaces one policy file (the running server picks it up by itself).
    func writePolicy(_ name: String, _ text: String) throws {
        try text.write(to: policyDirectory.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    func shutdown() {
        try? server.shutdown()
        try? fake.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    /// The committed row of a call, read through a separate connection as a report would.
    func row(_ requestID: String) throws -> LedgerEntry? {
        server.flushLedger()
        let reader = try LedgerBackend(dbPath).openSource()
        defer { reader.close() }
        return try reader.entry(requestId: requestID)
    }

    /// The row of a call that ends on its own (a client that left, a deadline), once it is
    /// recorded: polled every 20 ms for at most `seconds`.
    func awaitRow(_ requestID: String, seconds: Int = 10) async throws -> LedgerEntry? {
        for _ in 0..<(seconds * 50) {
            if let row = try row(requestID) { return row }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    func allRows() throws -> [LedgerEntry] {
        server.flushLedger()
        let reader = try LedgerBackend(dbPath).openSource()
        defer { reader.close() }
        return try reader.entries(since: 0, until: Int64.max)
    }

    func post(_ path: String, key: String?, dialect: String = "openai", json: String,
              requestID: String, headers: [(String, String)] = []) async throws -> ReceivedResponse {
        try await TestHTTPClient.postJSON(port: port, path: path, key: key, dialect: dialect, json: json,
                                          headers: [("x-request-id", requestID)] + headers)
    }
}

/// Exact cost of a usage at prices per 1M tokens given in micro-dollars per 1M tokens (pd per token).
func picodollars(_ tokens: [(Int, Int64)]) -> Int64 {
    tokens.reduce(0) { $0 + Int64($1.0) * $1.1 }
}
