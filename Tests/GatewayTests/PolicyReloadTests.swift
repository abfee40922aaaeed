import FakeLLMTLS
import Foundation
import Ledger
import LedgerTestSupport
import Logging
import Policy
import Testing
@testable import Gateway

@Suite("Policy hot reload")
struct PolicyReloadTests {
    static let big = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":""# + String(repeating: "x", count: 3000) + #""}]}"#

    private func status(_ h: ProxyHarness, _ id: String) async throws -> Int {
        try await h.post("/v1/chat/completions", key: h.aliceKey, json: Self.big, requestID: id).status
    }

    @Test("a valid change is in force within two seconds; an invalid one is refused and the last good policy serves")
    func reload() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let before = h.server.policy.version
        #expect(try await status(h, "r-0") == 200)

        try h.writePolicy("gateway.yaml", "max_body_bytes: 1024\n")
        var seen = 200
        for attempt in 0..<20 where seen == 200 {
            try await Task.sleep(for: .milliseconds(100))
            seen = try await status(h, "r-1-\(attempt)")
        }
        #expect(seen == 413)
        let good = h.server.policy.version
        #expect(good != before)

        try h.writePolicy("gateway.yaml", "max_body_bytes: -5\nunknown_key: 1\n")
        try await Task.sleep(for: .milliseconds(1_500))
        #expect(h.server.policy.version == good)
        #expect(try await status(h, "r-2") == 413)
        #expect(h.server.reloadPolicy() == false)
        // The same refused files, loaded by the watcher and again by hand: one refused change.
        #expect(try await Scrape.of(h)["tokenctl_policy_reload_errors_total"] == 1)
        try h.writePolicy("gateway.yaml", "max_body_bytes: -6\n")
        #expect(h.server.reloadPolicy() == false)
        #expect(try await Scrape.of(h)["tokenctl_policy_reload_errors_total"] == 2)
        // For as long as the files stay refused (a restart would not start), not only once.
        #expect(try await Scrape.of(h)["tokenctl_policy_files_refused"] == 1)
        let refusedHealth = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/healthz")
        #expect(refusedHealth.status == 200 && refusedHealth.text.contains(#""status":"ok""#)
                && refusedHealth.text.contains(#""policy_files":"refused""#), "\(refusedHealth.text)")

        try h.writePolicy("gateway.yaml", "max_body_bytes: 100000\n")
        #expect(h.server.reloadPolicy())
        #expect(try await status(h, "r-3") == 200)
        #expect(try await Scrape.of(h)["tokenctl_policy_files_refused"] == 0)
        #expect(try await TestHTTPClient.send(port: h.port, method: .GET, path: "/healthz").text
                .contains(#""policy_files":"ok""#))
    }
}

@Suite("Policy file watch")
struct PolicyFileSettlingTests {
    @Test("a change loads once two looks in a row saw the same files, not while they still change")
    func loadsOnceTheFilesSettle() {
        var settling = PolicyReloader.FileSettling()
        let loaded = ["plans.yaml": "1:100:1"]
        let truncated = ["plans.yaml": "1:0:2"], written = ["plans.yaml": "1:180:3"]
        // Loaded; an edit on its way (wait); changed again (wait once more); the same twice
        // (load); then put back as loaded before it settled (nothing to load).
        let looks = [loaded, truncated, written, written, truncated, loaded, truncated].map {
            settling.look($0, loaded: loaded)
        }
        #expect(looks == [false, false, false, true, false, false, false])
    }

    @Test("a named file is recorded as the load found it: one that appeared after a load found it missing is still a change to load")
    func namedFileStampedAsTheLoadFoundIt() throws {
        let directory = try TemporaryDirectory()
        defer { _ = directory }
        let ca = directory.path("ca.pem")
        // The load found it missing; by the time the refusal is recorded the copy has landed.
        try "-----BEGIN CERTIFICATE-----\n".write(toFile: ca, atomically: true, encoding: .utf8)
        let recorded = PolicyReloader.fingerprint(["providers.yaml": "1:100@1.0"], namedFiles: [ca: FileStamp.unreadable])
        #expect(recorded == ["providers.yaml": "1:100@1.0", ca: FileStamp.unreadable])
        // So the watcher's next looks see the file as changed, and load it.
        var settling = PolicyReloader.FileSettling()
        let now = ["providers.yaml": "1:100@1.0", ca: FileStamp.of(ca)]
        #expect([settling.look(now, loaded: recorded), settling.look(now, loaded: recorded)] == [false, true])
    }

    /// A deploy may still be writing the files while the service starts: what changed between
    /// the start-up load and the watcher's first look must load, not pass for the files loaded.
    @Test("a change made between the start-up load and the watcher's start is loaded",
          arguments: ["a policy file rewritten", "a policy file that appeared", "a ca_file replaced"])
    func changeBeforeTheWatcherStartsLoads(change: String) async throws {
        let scratch = try TemporaryDirectory()
        defer { _ = scratch }
        let directory = scratch.url.path
        func write(_ name: String, _ text: String) throws {
            try text.write(toFile: scratch.path(name), atomically: true, encoding: .utf8)
        }
        try write("providers.yaml", """
            providers:
              openai: { dialect: openai, base_url: "https://127.0.0.1:9/v1", ca_file: ca.pem }
            models:
              - { match: "gpt-*", provider: openai }
            """)
        try write("prices.yaml", #"- { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", output: "0.6" }"#)
        try write("gateway.yaml", "max_body_bytes: 100000\n")
        try FakeTLS.generate().writeCertificateAuthority(to: scratch.path("ca.pem"))
        let loaded = try PolicyLoader.load(directory: directory, environment: [:])

        switch change {
        case "a policy file rewritten": try write("gateway.yaml", "max_body_bytes: 1024\n")
        case "a policy file that appeared": try write("plans.yaml", "plans: { small: { requests_per_minute: 5 } }\ndefaults: { plan: small }\n")
        default: try FakeTLS.generate().writeCertificateAuthority(to: scratch.path("ca.pem"))
        }
        var logger = Logger(label: "test")
        logger.logLevel = .error
        let reloader = PolicyReloader(policy: loaded, directory: directory, environment: [:], logger: logger)
        reloader.startWatching(every: 0.02)
        defer { reloader.stopWatching() }
        let deadline = ContinuousClock.now + .seconds(10)
        while reloader.policy.version == loaded.version, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(reloader.policy.version != loaded.version)
        #expect(reloader.failedReloads == 0, "\(reloader.lastError ?? "")")
    }
}

@Suite("Policy reload that would lift every limit")
struct PolicyReloadLimitTests {
    /// A deploy that removes then writes plans.yaml, or a copy that truncates it first, must not
    /// open a window without budgets: such a change is refused; running without plans takes a restart.
    @Test("plans.yaml removed, emptied or left with only its zone: refused, the plans stay in force")
    func plansCannotVanishOnReload() async throws {
        let capture = LogCapture()
        let h = try ProxyHarness(plansYAML: """
            defaults: { plan: small }
            plans: { small: { models: ["gpt-4o-mini"] } }
            """, logger: capture.logger)
        defer { h.shutdown() }
        let chat = #"{"model":"o4-mini","messages":[{"role":"user","content":"hi"}]}"#
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "p-0").status == 403)
        let plans = h.policyDirectory.appendingPathComponent("plans.yaml")
        try FileManager.default.removeItem(at: plans)
        #expect(!h.server.reloadPolicy())
        for text in ["", "# nothing yet\n", "time_zone: UTC\n"] {
            try h.writePolicy("plans.yaml", text)
            #expect(!h.server.reloadPolicy(), "\(text)")
        }
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "p-1").status == 403)
        #expect(capture.text.contains("plans.yaml: the change would lift every plan, limit and budget"))
        // Other limits in their place load as any change does.
        try h.writePolicy("plans.yaml", "defaults: { plan: roomy }\nplans: { roomy: { requests_per_minute: 1000 } }\n")
        #expect(h.server.reloadPolicy())
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: chat, requestID: "p-2").status == 200)
    }
}

extension PolicyReloadLimitTests {
    /// gateway.yaml alike: its loss would reopen `/metrics` (the trial's admin saw team names and
    /// spend answered to anyone after `mv gateway.yaml`) and the admin API, CORS and limits it set.
    @Test("gateway.yaml removed, emptied or left with only defaults: refused, its settings stay in force")
    func gatewaySettingsCannotVanishOnReload() async throws {
        let capture = LogCapture()
        let h = try ProxyHarness(gatewayYAML: "metrics: { access: admin_key }\n", logger: capture.logger)
        defer { h.shutdown() }
        func metricsStatus() async throws -> Int {
            try await TestHTTPClient.send(port: h.port, method: .GET, path: "/metrics").status
        }
        #expect(try await metricsStatus() == 401)
        try FileManager.default.removeItem(at: h.policyDirectory.appendingPathComponent("gateway.yaml"))
        #expect(!h.server.reloadPolicy())
        for text in ["", "# moved\n", "max_body_bytes: 10485760\n"] {
            try h.writePolicy("gateway.yaml", text)
            #expect(!h.server.reloadPolicy(), "\(text)")
        }
        #expect(try await metricsStatus() == 401)
        #expect(capture.text.contains("gateway.yaml: the change would put every setting back to its default at once"))
        // Another setting in its place loads as any change does.
        try h.writePolicy("gateway.yaml", "max_body_bytes: 100000\n")
        #expect(h.server.reloadPolicy())
        #expect(try await metricsStatus() == 200)
    }
}

@Suite("Policy reload of rate limits")
struct PolicyReloadRateTests {
    /// A caller in token debt under the old limit (one long prompt) is let in as soon as a raised
    /// limit allows: the debt was kept in time at the old rate, so it still waited minutes.
    @Test("tokens_per_minute raised while a caller is in debt under the old limit: its next call is admitted")
    func raisedLimitAdmitsAtOnce() async throws {
        let plans = { (tpm: Int) in "defaults: { plan: metered }\nplans: { metered: { tokens_per_minute: \(tpm) } }\n" }
        let h = try ProxyHarness(plansYAML: plans(1_000))
        defer { h.shutdown() }
        let long = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":""# + String(repeating: "lorem ", count: 3_000) + #""}]}"#
        let short = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: long, requestID: "long").status == 200)
        let refused = try await h.post("/v1/chat/completions", key: h.aliceKey, json: short, requestID: "in-debt")
        #expect(refused.status == 429, "\(refused.text)")
        try h.writePolicy("plans.yaml", plans(100_000))
        #expect(h.server.reloadPolicy())
        let raised = try await h.post("/v1/chat/completions", key: h.aliceKey, json: short, requestID: "raised")
        #expect(raised.status == 200, "\(raised.text)")
        #expect(raised.header("x-ratelimit-limit-tokens") == "100000")
    }
}

@Suite("Policy reload warnings")
struct PolicyReloadWarningTests {
    @Test("a reload logs only the warnings the policy in force did not have")
    func warningsLoggedOnce() async throws {
        let capture = LogCapture()
        let h = try ProxyHarness(logger: capture.logger)
        defer { h.shutdown() }
        let unused = #"- { model: "mistral-large", effective_from: "2025-01-01", input: "2", output: "6", source: test }"#
        try h.writePolicy("prices.yaml", ProxyHarness.prices + "\n" + unused + "\n")
        #expect(h.server.reloadPolicy())
        #expect(h.server.reloadPolicy())
        try h.writePolicy("gateway.yaml", "max_body_bytes: 100000\n")
        #expect(h.server.reloadPolicy())
        let warned = capture.text.components(separatedBy: "\n").filter { $0.contains("'mistral-large'") }
        #expect(warned.count == 1, "\(warned)")
        #expect(warned.first?.contains("this price is unused") == true)
    }

    @Test("files put back after a refused change are said to load again")
    func repairIsLogged() async throws {
        let capture = LogCapture()
        let h = try ProxyHarness(logger: capture.logger)
        defer { h.shutdown() }
        let good = try String(contentsOf: h.policyDirectory.appendingPathComponent("gateway.yaml"), encoding: .utf8)
        try h.writePolicy("gateway.yaml", "max_body_bytes: -5\n")
        #expect(!h.server.reloadPolicy())
        try h.writePolicy("gateway.yaml", good)
        #expect(h.server.reloadPolicy())
        let lines = capture.text.components(separatedBy: "\n")
        let refused = try #require(lines.firstIndex { $0.contains("policy change refused") })
        let repaired = try #require(lines.firstIndex { $0.contains("policy files load again; the policy in force is unchanged") })
        #expect(refused < repaired)
    }
}
