import Testing
@testable import Policy

@Suite struct GatewayFileTests {
    @Test func absentOrEmptyMeansDefaults() throws {
        #expect(try PolicyFixture.with().load().gateway == .defaults)
        #expect(try PolicyFixture.with(gateway: "# nothing set\n").load().gateway == .defaults)
        #expect(GatewaySettings.defaults.maxBodyBytes == 10 * 1024 * 1024)
        #expect(GatewaySettings.defaults.unpricedModels == .refuse)
        #expect(GatewaySettings.defaults.requestTimeoutMs == 600_000)
        #expect(GatewaySettings.defaults.connectTimeoutMs == 10_000)
    }

    @Test func valuesAreReadAndFeedProviderDefaults() throws {
        let set = try PolicyFixture.with(gateway: """
            max_body_bytes: 1_048_576
            unpriced_models: allow
            request_timeout_ms: 120000
            connect_timeout_ms: 5000
            """).load()
        #expect(set.gateway == GatewaySettings(maxBodyBytes: 1_048_576, unpricedModels: .allow,
                                               requestTimeoutMs: 120_000, connectTimeoutMs: 5_000))
        #expect(set.providers["openai"]?.timeoutMs == 120_000)
        #expect(set.providers["openai"]?.connectTimeoutMs == 5_000)
    }

    @Test func adminAPIManageKeysIsOffUnlessSet() throws {
        #expect(try PolicyFixture.with(gateway: "").load().gateway.adminAPI.manageKeys == false)
        #expect(try PolicyFixture.with(gateway: "admin_api: { manage_keys: true }").load().gateway.adminAPI.manageKeys)
        #expect(try PolicyFixture.with(gateway: "admin_api:\n").load().gateway.adminAPI.manageKeys == false)
        #expect(try PolicyFixture.with(gateway: """
            admin_api: { manage_keys: yes }
            """).problems() == ["gateway.yaml:1: admin_api.manage_keys: expected true or false, found 'yes'"])
        #expect(try PolicyFixture.with(gateway: """
            admin_api: { keys: true }
            """).problems() == ["gateway.yaml:1: admin_api.keys: unknown key 'keys' (expected manage_keys)"])
    }

    @Test func unknownCallerRows() throws {
        #expect(GatewaySettings.defaults.unknownCallers == UnknownCallerSettings(rowsPerMinute: 600, rowsPerMinutePerAddress: 60))
        #expect(try PolicyFixture.with(gateway: "unknown_callers:\n").load().gateway.unknownCallers == .defaults)
        #expect(try PolicyFixture.with(gateway: "unknown_callers: { rows_per_minute: 0 }").load().gateway.unknownCallers
                == UnknownCallerSettings(rowsPerMinute: 0, rowsPerMinutePerAddress: 60))
        #expect(try PolicyFixture.with(gateway: """
            unknown_callers:
              rows_per_minute: 6_000
              rows_per_minute_per_address: 1
            """).load().gateway.unknownCallers == UnknownCallerSettings(rowsPerMinute: 6_000, rowsPerMinutePerAddress: 1))
        #expect(try PolicyFixture.with(gateway: """
            unknown_callers: { rows_per_minute: -1, rows_per_minute_per_address: 1_000_001, rows: 3 }
            """).problems() == [
            "gateway.yaml:1: unknown_callers.rows: unknown key 'rows' (expected rows_per_minute or rows_per_minute_per_address)",
            "gateway.yaml:1: unknown_callers.rows_per_minute: -1 is out of range (0...1000000)",
            "gateway.yaml:1: unknown_callers.rows_per_minute_per_address: 1000001 is out of range (0...1000000)",
        ])
    }

    @Test func badValuesAreProblems() throws {
        #expect(try PolicyFixture.with(gateway: """
            max_body_bytes: 0
            unpriced_models: maybe
            request_timeout_ms: 1.5
            connect_timeout_ms: 0x10
            max_bytes: 3
            """).problems() == [
            "gateway.yaml:1: max_body_bytes: 0 is out of range (1...1073741824)",
            "gateway.yaml:2: unpriced_models: unknown value 'maybe' (expected refuse or allow)",
            "gateway.yaml:3: request_timeout_ms: expected a whole number, found number 1.5",
            "gateway.yaml:4: connect_timeout_ms: expected a decimal whole number, found '0x10'",
            "gateway.yaml:5: max_bytes: unknown key 'max_bytes' (expected max_body_bytes, unpriced_models, request_timeout_ms, connect_timeout_ms, metrics, header_timeout_ms, body_timeout_ms, max_connections, cors, admin_api or unknown_callers)",
        ])
        #expect(try PolicyFixture.with(gateway: "- 1\n").problems() == [
            "gateway.yaml:1: expected a mapping, found a list",
        ])
    }

    @Test func maxConnections() throws {
        #expect(GatewaySettings.defaults.maxConnections == nil)
        #expect(try PolicyFixture.with(gateway: "max_connections: 5000\n").load().gateway.maxConnections == 5_000)
        #expect(try PolicyFixture.with(gateway: "max_connections: 0\n").problems()
                == ["gateway.yaml:1: max_connections: 0 is out of range (1...10000000)"])
    }

    @Test func corsOrigins() throws {
        #expect(GatewaySettings.defaults.cors == .none)
        let set = try PolicyFixture.with(gateway: "cors: { allowed_origins: [\"https://tools.example.com\", \"http://localhost:5173\"] }\n").load()
        #expect(set.gateway.cors.allowedOrigins == ["https://tools.example.com", "http://localhost:5173"])
        #expect(set.gateway.cors.allowOrigin(for: "http://localhost:5173") == "http://localhost:5173")
        #expect(set.gateway.cors.allowOrigin(for: "http://localhost:5174") == nil)
        #expect(try PolicyFixture.with(gateway: """
            cors:
              allowed_origins: [tools.example.com, "https://tools.example.com/app", "https://Tools.example.com", "*"]
            """).problems() == [
            "gateway.yaml:2: cors.allowed_origins[0]: 'tools.example.com' is not an origin: expected http:// or https:// and a host, as a browser sends it (https://tools.example.com), or *",
            "gateway.yaml:2: cors.allowed_origins[1]: 'https://tools.example.com/app' is not an origin: an origin has no path, query, user or spaces (https://tools.example.com:8443)",
            "gateway.yaml:2: cors.allowed_origins[2]: 'https://Tools.example.com' is not an origin as browsers send it: write it in lower case",
        ])
    }

    @Test func metricsUserLabels() throws {
        #expect(GatewaySettings.defaults.metrics == MetricsSettings(userLabels: .none, topUsers: 20))
        let env = ["OPENAI_API_KEY": "k"]
        let set = try PolicyFixture.with(gateway: "metrics: { user_labels: top, top_users: 5 }\n").load(env)
        #expect(set.gateway.metrics == MetricsSettings(userLabels: .top, topUsers: 5))
        #expect(set.warnings.map(\.description) == [PolicyFixture.noPlans])
        #expect(try PolicyFixture.with(gateway: "metrics:\n").load().gateway.metrics == .defaults)

        let idle = try PolicyFixture.with(gateway: "metrics: { top_users: 5 }\n").load(env)
        #expect(idle.warnings.map(\.description) == ["gateway.yaml:1: metrics.top_users: has no effect unless user_labels is top",
                                                     PolicyFixture.noPlans])

        #expect(try PolicyFixture.with(gateway: """
            metrics:
              user_labels: all
              top_users: 5000
              per_user: true
            """).problems() == [
            "gateway.yaml:2: metrics.user_labels: unknown value 'all' (expected none or top)",
            "gateway.yaml:3: metrics.top_users: 5000 is out of range (1...1000)",
            "gateway.yaml:4: metrics.per_user: unknown key 'per_user' (expected user_labels, top_users or access)",
        ])
        #expect(try PolicyFixture.with(gateway: "metrics: { access: admin_key }\n").load(env).gateway.metrics
                == MetricsSettings(access: .adminKey))
        #expect(try PolicyFixture.with(gateway: "metrics: { access: admin }\n").problems() == [
            "gateway.yaml:1: metrics.access: unknown value 'admin' (expected open or admin_key)",
        ])
        #expect(try PolicyFixture.with(gateway: "metrics: [top]\n").problems() == [
            "gateway.yaml:1: metrics: expected a mapping, found a list",
        ])
    }
}
