import Crypto
import Foundation
import Metering
import Testing
@testable import Policy
import X509

@Suite struct ProvidersFileTests {
    @Test func unknownDialectNamesFileLineAndField() throws {
        let fixture = try PolicyFixture.with(providers: """
            # comment
            providers:
              anthropic:
                dialect: anthropic
                base_url: https://api.anthropic.com
              openai:
                dialect: opneai
                base_url: https://api.openai.com/v1
            models:
              - { match: "gpt-*", provider: openai }
              - { match: "claude-*", provider: anthropic }
            """, prices: """
            - { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", output: "0.60" }
            - { model: "claude-haiku-4-5", effective_from: "2025-10-01", input: "1", output: "5" }
            """)
        #expect(fixture.problems() == [
            "providers.yaml:7: providers.openai.dialect: unknown dialect 'opneai' (expected openai or anthropic)",
        ])
    }

    @Test func firstByteAndIdleDeadlinesAreOptionalAndChecked() throws {
        let fixture = try PolicyFixture.with(providers: """
            providers:
              openai: { dialect: openai, base_url: "https://api.openai.com/v1", first_byte_timeout_ms: 30000, idle_timeout_ms: 15000 }
              anthropic: { dialect: anthropic, base_url: "https://api.anthropic.com" }
            models:
              - { match: "gpt-*", provider: openai }
              - { match: "claude-*", provider: anthropic }
            """, prices: """
            - { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", output: "0.60" }
            - { model: "claude-haiku-4-5", effective_from: "2025-10-01", input: "1", output: "5" }
            """)
        let set = try fixture.load()
        #expect(set.providers["openai"]?.firstByteTimeoutMs == 30_000)
        #expect(set.providers["openai"]?.idleTimeoutMs == 15_000)
        #expect(set.providers["anthropic"]?.firstByteTimeoutMs == nil)
        #expect(set.providers["anthropic"]?.idleTimeoutMs == nil)

        let bad = try PolicyFixture.with(providers: """
            providers:
              openai: { dialect: openai, base_url: "https://api.openai.com/v1", first_byte_timeout_ms: 0, idle_timeout_ms: soon }
            models:
              - { match: "gpt-*", provider: openai }
            """, prices: """
            - { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", output: "0.60" }
            """)
        let problems = bad.problems()
        #expect(problems.count == 2)
        #expect(problems.contains { $0.hasPrefix("providers.yaml:2: providers.openai.first_byte_timeout_ms:") })
        #expect(problems.contains { $0.hasPrefix("providers.yaml:2: providers.openai.idle_timeout_ms:") })
    }

    @Test func providerSlotsAndQueue() throws {
        let prices = """
            - { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", output: "0.60" }
            """
        let set = try PolicyFixture.with(providers: """
            providers:
              openai: { dialect: openai, base_url: "https://api.openai.com/v1", max_concurrent: 8 }
              local: { dialect: openai, base_url: "http://127.0.0.1:9/v1", max_concurrent: 2, max_queue: 0, queue_timeout_ms: 750 }
            models:
              - { match: "gpt-*", provider: openai }
              - { match: "llama-*", provider: local }
            """, prices: prices).load()
        #expect(set.providers["openai"]?.limits == ProviderLimits(maxConcurrent: 8, maxQueue: 8, queueTimeoutMs: 5_000))
        #expect(set.providers["local"]?.limits == ProviderLimits(maxConcurrent: 2, maxQueue: 0, queueTimeoutMs: 750))

        let problems = try PolicyFixture.with(providers: """
            providers:
              openai: { dialect: openai, base_url: "https://api.openai.com/v1", max_queue: 3 }
              other: { dialect: openai, base_url: "https://example.com/v1", max_concurrent: 0 }
            models:
              - { match: "gpt-*", provider: openai }
              - { match: "x-*", provider: other }
            """, prices: prices).problems()
        #expect(problems.count == 2)
        #expect(problems.contains("providers.yaml:2: providers.openai.max_queue: has no effect without max_concurrent"))
        #expect(problems.contains { $0.hasPrefix("providers.yaml:3: providers.other.max_concurrent:") })
    }

    @Test func fallbacksMustBeRoutedModelsOfTheSameDialect() throws {
        let prices = """
            - { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", output: "0.60" }
            - { model: "gpt-4o", effective_from: "2024-07-18", input: "2.5", output: "10" }
            - { model: "claude-haiku-4-5", effective_from: "2025-10-01", input: "1", output: "5" }
            """
        let good = try PolicyFixture.with(providers: """
            providers:
              openai: { dialect: openai, base_url: "https://api.openai.com/v1" }
              anthropic: { dialect: anthropic, base_url: "https://api.anthropic.com" }
            models:
              - { match: "gpt-4o", provider: openai, fallbacks: ["gpt-4o-mini"] }
              - { match: "gpt-*", provider: openai }
              - { match: "claude-*", provider: anthropic }
            """, prices: prices).load()
        #expect(good.route(forModel: "gpt-4o")?.fallbacks == ["gpt-4o-mini"])
        #expect(good.route(forModel: "gpt-4o-mini")?.fallbacks == [])

        let problems = try PolicyFixture.with(providers: """
            providers:
              openai: { dialect: openai, base_url: "https://api.openai.com/v1" }
              anthropic: { dialect: anthropic, base_url: "https://api.anthropic.com" }
            models:
              - { match: "gpt-4o", provider: openai, fallbacks: ["claude-haiku-4-5", "llama-3", "gpt-*"] }
              - { match: "gpt-*", provider: openai }
              - { match: "claude-*", provider: anthropic }
            """, prices: prices).problems()
        #expect(problems.count == 3)
        #expect(problems.contains { $0.hasPrefix("providers.yaml:5: models[0].fallbacks[0]: fallback 'claude-haiku-4-5' is served by provider 'anthropic', which speaks anthropic") })
        #expect(problems.contains("providers.yaml:5: models[0].fallbacks[1]: fallback 'llama-3' is not routed by any entry of models"))
        #expect(problems.contains("providers.yaml:5: models[0].fallbacks[2]: a fallback is one model, not a pattern"))
    }

    @Test func everyProblemIsReportedNotJustTheFirst() throws {
        let fixture = try PolicyFixture.with(providers: """
            providers:
              openai:
                dialect: openai
                base_url: ftp://api.openai.com/v1
                api_key_env: 1BAD
                timeout_ms: "600000"
                colour: blue
              local:
                base_url: http://localhost:8080/v1/
              broken: { dialect: openai, base_url: "https://" }
              creds: { dialect: openai, base_url: "https://user:hunter2@example.com" }
            models:
              - { match: "gpt-*", provider: openai }
              - { match: "gpt-4o", provider: openai }
              - { match: "gpt-*", provider: openai }
              - { match: "llama-*", provider: ollama }
              - { match: "", provider: local }
              - { pattern: "x" }
            """)
        #expect(fixture.problems() == [
            "providers.yaml:4: providers.openai.base_url: bad URL: scheme must be http or https",
            "providers.yaml:5: providers.openai.api_key_env: '1BAD' is not an environment variable name (letters, digits, '_'; not starting with a digit)",
            "providers.yaml:6: providers.openai.timeout_ms: expected a whole number, found string '600000'",
            "providers.yaml:7: providers.openai.colour: unknown key 'colour' (expected dialect, base_url, api_key_env, headers, connect_timeout_ms, timeout_ms, first_byte_timeout_ms, idle_timeout_ms, max_concurrent, max_queue, queue_timeout_ms, retries, ca_file, http2, openai_compatible or ask_stream_usage)",
            "providers.yaml:9: providers.local.dialect: missing required field",
            "providers.yaml:10: providers.broken.base_url: bad URL: no host",
            "providers.yaml:11: providers.creds.base_url: bad URL: credentials in the URL would be logged; use api_key_env",
            "providers.yaml:14: models[1].match: never matches: every model it matches is taken by the earlier route 'gpt-*' at line 13 (put specific routes first)",
            "providers.yaml:15: models[2].match: duplicate of the route at line 13",
            "providers.yaml:16: models[3].provider: unknown provider 'ollama' (expected broken, creds, local or openai)",
            "providers.yaml:17: models[4].match: empty model name",
            "providers.yaml:18: models[5].pattern: unknown key 'pattern' (expected match, provider or fallbacks)",
            "providers.yaml:18: models[5].match: missing required field",
            "providers.yaml:18: models[5].provider: missing required field",
        ])
        // The secret-bearing URL is never echoed back.
        #expect(!fixture.problems().joined().contains("hunter2"))
    }

    @Test func missingSectionsAndWrongShapes() throws {
        #expect(try PolicyFixture.with(providers: "providers: {}\n").problems() == [
            "providers.yaml:1: models: missing required field",
        ])
        #expect(try PolicyFixture.with(providers: "providers: [openai]\nmodels: {}\n").problems() == [
            "providers.yaml:1: providers: expected a mapping, found a list",
            "providers.yaml:2: models: expected a list, found a mapping",
        ])
        #expect(try PolicyFixture.with(providers: "").problems() == [
            "providers.yaml: empty file (expected 'providers' and 'models')",
        ])
    }

    @Test func yamlSyntaxErrorCarriesItsLine() throws {
        let problems = try PolicyFixture.with(providers: """
            providers:
              openai: { dialect: openai, base_url: "https://api.openai.com/v1" }
            models:
              - { match: "gpt-*", provider: openai
            """).problems()
        #expect(problems.count == 1)
        // libyaml notices the unclosed '{' at the end of the input; the problem points at the
        // file's last line, never past it.
        #expect(problems.first?.hasPrefix("providers.yaml:4: yaml: syntax error:") == true)
    }

    @Test func duplicateYamlKeyIsASyntaxProblem() throws {
        let problems = try PolicyFixture.with(providers: """
            providers:
              openai: { dialect: openai, base_url: "https://api.openai.com/v1" }
            providers:
              other: { dialect: openai, base_url: "https://example.com" }
            models: []
            """).problems()
        #expect(problems == ["providers.yaml:1: yaml: duplicate key 'providers' in one mapping"])
    }

    @Test func headersAreValidatedAndAnthropicVersionDefaulted() throws {
        let bad = try PolicyFixture.with(providers: """
            providers:
              openai:
                dialect: openai
                base_url: https://api.openai.com/v1
                headers:
                  Authorization: Bearer sk-x
                  "bad header": x
                  OpenAI-Organization: org-1
                  openai-organization: org-2
                  Accept-Encoding: gzip
            models:
              - { match: "gpt-*", provider: openai }
            """).problems()
        #expect(bad == [
            "providers.yaml:6: providers.openai.headers.Authorization: header 'Authorization' may not be configured (credentials come from api_key_env)",
            "providers.yaml:7: providers.openai.headers.bad header: 'bad header' is not a valid header name",
            "providers.yaml:9: providers.openai.headers.openai-organization: duplicate of the header at line 8 (names are case-insensitive)",
            "providers.yaml:10: providers.openai.headers.Accept-Encoding: header 'Accept-Encoding' may not be configured (the proxy reads answers uncompressed to meter them)",
        ])

        let set = try PolicyFixture.with(providers: """
            providers:
              anthropic: { dialect: anthropic, base_url: "https://api.anthropic.com/" }
              pinned:
                dialect: anthropic
                base_url: https://proxy.example.com
                headers: { anthropic-version: "2024-01-01", x-team: "ml" }
                connect_timeout_ms: 2_000
                timeout_ms: 30000
            models:
              - { match: "claude-*", provider: anthropic }
              - { match: "pinned-*", provider: pinned }
            """, prices: """
            - { model: "claude-*", effective_from: "2025-01-01", input: "3", output: "15" }
            - { model: "pinned-*", effective_from: "2025-01-01", input: "3", output: "15" }
            """).load()
        let anthropic = try #require(set.providers["anthropic"])
        #expect(anthropic.baseURL == "https://api.anthropic.com")
        #expect(anthropic.header("Anthropic-Version") == "2023-06-01")
        #expect(anthropic.connectTimeoutMs == 10_000 && anthropic.timeoutMs == 600_000)
        #expect(anthropic.apiKeyEnv == nil && anthropic.apiKey == nil)
        let pinned = try #require(set.providers["pinned"])
        #expect(pinned.headers.map(\.0) == ["anthropic-version", "x-team"])
        #expect(pinned.header("anthropic-version") == "2024-01-01")
        #expect(pinned.connectTimeoutMs == 2_000 && pinned.timeoutMs == 30_000)
    }

    @Test func caFileIsReadAtLoadRelativeToThePolicyDirectory() throws {
        let pem = try Self.selfSignedCertificatePEM()
        let fixture = try PolicyFixture.with(providers: """
            providers:
              local:   { dialect: openai, base_url: "https://llm.internal:8443/v1", ca_file: certs/company-ca.pem }
              plain:   { dialect: openai, base_url: "http://127.0.0.1:8000/v1", ca_file: certs/company-ca.pem }
              gone:    { dialect: openai, base_url: "https://a.example/v1", ca_file: /nonexistent/ca.pem }
              notpem:  { dialect: openai, base_url: "https://b.example/v1", ca_file: prices.yaml }
              folder:  { dialect: openai, base_url: "https://c.example/v1", ca_file: certs }
              key:     { dialect: openai, base_url: "https://d.example/v1", ca_file: certs/key.pem }
              garbled: { dialect: openai, base_url: "https://e.example/v1", ca_file: certs/garbled.pem }
            models:
              - { match: "gpt-*", provider: local }
            """)
        let directory = fixture.directory
        try FileManager.default.createDirectory(atPath: directory + "/certs", withIntermediateDirectories: true)
        try pem.write(toFile: directory + "/certs/company-ca.pem", atomically: true, encoding: .utf8)
        try (pem + "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n")
            .write(toFile: directory + "/certs/key.pem", atomically: true, encoding: .utf8)
        try "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
            .write(toFile: directory + "/certs/garbled.pem", atomically: true, encoding: .utf8)
        let problems = fixture.problems()
        #expect(Array(problems.prefix(5)) == [
            "providers.yaml:3: providers.plain.ca_file: applies to an https:// base_url only",
            "providers.yaml:4: providers.gone.ca_file: '/nonexistent/ca.pem' does not exist",
            "providers.yaml:5: providers.notpem.ca_file: '\(directory)/prices.yaml' holds no PEM certificate (-----BEGIN CERTIFICATE-----); a DER file converts with `openssl x509 -inform der -in FILE -out FILE.pem`",
            "providers.yaml:6: providers.folder.ca_file: '\(directory)/certs' is not a regular file",
            "providers.yaml:7: providers.key.ca_file: '\(directory)/certs/key.pem': block 2 is labelled PRIVATE KEY, not CERTIFICATE",
        ])
        #expect(problems.count == 6 && problems[5].hasPrefix(
            "providers.yaml:8: providers.garbled.ca_file: '\(directory)/certs/garbled.pem': certificate 1 does not parse as X.509 ("),
            "\(problems)")

        let sound = try PolicyFixture.with(providers: """
            providers:
              local:  { dialect: openai, base_url: "https://llm.internal:8443/v1", ca_file: certs/company-ca.pem }
              system: { dialect: openai, base_url: "https://api.openai.com/v1" }
            models:
              - { match: "gpt-*", provider: local }
            """)
        try FileManager.default.createDirectory(atPath: sound.directory + "/certs", withIntermediateDirectories: true)
        try pem.write(toFile: sound.directory + "/certs/company-ca.pem", atomically: true, encoding: .utf8)
        let soundDirectory = sound.directory
        let stamp = FileStamp.of(soundDirectory + "/certs/company-ca.pem")
        let set = try sound.load()
        let authorities = try #require(set.providers["local"]?.certificateAuthorities)
        #expect(authorities.path == soundDirectory + "/certs/company-ca.pem")
        #expect(authorities.pem == Array(pem.utf8))
        #expect(set.providers["system"]?.certificateAuthorities == nil)
        #expect(set.providers["local"]!.description.contains("caFile: \(soundDirectory)/certs/company-ca.pem"))
        // With its stamp as the load found it.
        #expect(set.namedFiles == [soundDirectory + "/certs/company-ca.pem": stamp])
        #expect(stamp != FileStamp.unreadable)
    }

    @Test func http2IsOnUnlessTurnedOff() throws {
        let fixture = try PolicyFixture.with(providers: """
            providers:
              a: { dialect: openai, base_url: "https://a.example/v1" }
              b: { dialect: openai, base_url: "https://b.example/v1", http2: false }
              c: { dialect: openai, base_url: "https://c.example/v1", http2: no }
            models:
              - { match: "gpt-*", provider: a }
            """)
        #expect(fixture.problems() == ["providers.yaml:4: providers.c.http2: expected true or false, found 'no'"])
        let sound = try PolicyFixture.with(providers: """
            providers:
              a: { dialect: openai, base_url: "https://a.example/v1" }
              b: { dialect: openai, base_url: "https://b.example/v1", http2: false }
              c: { dialect: openai, base_url: "http://127.0.0.1:8000/v1", http2: false }
            models:
              - { match: "gpt-*", provider: a }
            """)
        let set = try sound.load()
        #expect(set.providers["a"]?.http2 == true && set.providers["b"]?.http2 == false)
        #expect(set.warnings.map(\.description).contains(
            "providers.yaml:4: providers.c.http2: has no effect on an http:// base_url (HTTP/1.1 there)"), "\(set.warnings)")
    }

    /// The slip a new set-up makes most: an Anthropic base URL copied with /v1, an OpenAI one
    /// without it. Warned (the provider's 404s would say only "not found"), not refused.
    @Test("a base_url path that does not fit its dialect is warned about")
    func baseURLPathMistakesAreWarned() throws {
        let set = try PolicyFixture.with(providers: """
            providers:
              claude: { dialect: anthropic, base_url: "https://api.anthropic.com/v1/" }
              bare: { dialect: openai, base_url: "http://127.0.0.1:8000" }
              openai: { dialect: openai, base_url: "https://api.openai.com/v1" }
              anthropic: { dialect: anthropic, base_url: "https://api.anthropic.com" }
              prefixed: { dialect: openai, base_url: "https://gateway.example/openai/v1" }
            models:
              - { match: "gpt-*", provider: openai }
            """).load()
        let warnings = set.warnings.map(\.description).filter { $0.contains("base_url") }
        #expect(warnings.count == 2, "\(warnings)")
        #expect(warnings.contains { $0.hasPrefix("providers.yaml:2: providers.claude.base_url: ends in /v1") })
        #expect(warnings.contains { $0.hasPrefix("providers.yaml:3: providers.bare.base_url: has no path") })
    }

    /// The openai dialect's switches: the default, the value set, and the two ways to get one wrong.
    @Test(arguments: [("openai_compatible", false, "applies to the openai dialect only"),
                      ("ask_stream_usage", true, "applies to the openai dialect only (Anthropic streams always report usage)")])
    func openAIDialectSwitch(key: String, byDefault: Bool, anthropicProblem: String) throws {
        let fixture = try PolicyFixture.with(providers: """
            providers:
              a: { dialect: openai, base_url: "https://a.example/v1" }
              c: { dialect: anthropic, base_url: "https://c.example", \(key): \(!byDefault) }
              d: { dialect: openai, base_url: "http://127.0.0.1:8000/v1", \(key): yes }
            models:
              - { match: "gpt-*", provider: a }
            """)
        #expect(fixture.problems() == ["providers.yaml:3: providers.c.\(key): \(anthropicProblem)",
                                       "providers.yaml:4: providers.d.\(key): expected true or false, found 'yes'"])
        let set = try PolicyFixture.with(providers: """
            providers:
              a: { dialect: openai, base_url: "https://a.example/v1" }
              local: { dialect: openai, base_url: "http://127.0.0.1:8000/v1", \(key): \(!byDefault) }
            models:
              - { match: "gpt-*", provider: a }
            """).load()
        let value: (Provider?) -> Bool? = { key == "ask_stream_usage" ? $0?.asksStreamUsage : $0?.openAICompatible }
        #expect(value(set.providers["a"]) == byDefault && value(set.providers["local"]) == !byDefault)
    }

    @Test func aRenewedCertificateAuthorityIsANewPolicyVersion() throws {
        let providers = """
            providers:
              local: { dialect: openai, base_url: "https://llm.internal:8443/v1", ca_file: ca.pem }
            models:
              - { match: "gpt-*", provider: local }
            """
        let fixture = try PolicyFixture.with(providers: providers)
        defer { try? FileManager.default.removeItem(atPath: fixture.directory) }
        let first = try Self.selfSignedCertificatePEM(), second = try Self.selfSignedCertificatePEM()
        var versions: [String] = []
        for pem in [first, second, first] {
            try pem.write(toFile: fixture.directory + "/ca.pem", atomically: true, encoding: .utf8)
            versions.append(try PolicyLoader.load(directory: fixture.directory).version)
        }
        #expect(versions[0] != versions[1] && versions[2] == versions[0], "\(versions)")
    }

    @Test func aBundleLoadsAsOpenSSLWouldReadItAndAnExpiredCAIsWarnedOf() throws {
        let first = try Self.selfSignedCertificatePEM(name: "first CA")
        // Base64 on one line, and no newline between the two files' blocks (`cat a.pem b.pem`
        // of files without a final newline): OpenSSL reads neither as written.
        let second = try Self.selfSignedCertificatePEM(name: "second CA")
        let lines = second.split(separator: "\n").map(String.init)
        let oneLine = lines[0] + "\n" + lines[1..<(lines.count - 1)].joined() + "\n" + lines[lines.count - 1]
        let expired = try Self.selfSignedCertificatePEM(name: "old CA", validUntil: Date().addingTimeInterval(-86_400))
        let fixture = try PolicyFixture.with(providers: """
            providers:
              local: { dialect: openai, base_url: "https://llm.internal:8443/v1", ca_file: bundle.pem }
            models:
              - { match: "gpt-*", provider: local }
            """)
        let directory = fixture.directory
        try ("# company CAs\n" + first.dropLast() + oneLine + "\n" + expired)
            .write(toFile: directory + "/bundle.pem", atomically: true, encoding: .utf8)
        let set = try fixture.load()
        let authorities = try #require(set.providers["local"]?.certificateAuthorities)
        #expect(authorities.certificates.map(\.subject) == ["CN=first CA", "CN=second CA", "CN=old CA"])
        // What libcurl gets: each certificate a block of its own, ending with a newline.
        let pem = String(decoding: authorities.pem, as: UTF8.self)
        #expect(pem == first + second + expired, "\(pem)")
        let warnings = set.warnings.map(\.description).filter { $0.contains("expired on") }
        #expect(warnings.count == 1 && warnings[0].hasPrefix(
            "providers.yaml:2: providers.local.ca_file: '\(directory)/bundle.pem': certificate 3 (CN=old CA) expired on "),
            "\(set.warnings)")
    }

    /// A real certificate (the loader parses each one), made for the test.
    static func selfSignedCertificatePEM(name common: String = "tokenctl test CA",
                                         validUntil: Date = Date().addingTimeInterval(86_400)) throws -> String {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName { CommonName(common) }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: key.publicKey,
            notValidBefore: validUntil.addingTimeInterval(-2 * 86_400), notValidAfter: validUntil,
            issuer: name, subject: name,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0)) },
            issuerPrivateKey: key)
        return try certificate.serializeAsPEM().pemString + "\n"
    }

    @Test func apiKeyIsResolvedFromTheEnvironmentOrWarned() throws {
        let withKey = try PolicyFixture.with().load(["OPENAI_API_KEY": "sk-live-123"])
        #expect(withKey.providers["openai"]?.apiKey == "sk-live-123")
        #expect(withKey.warnings.map(\.description) == [PolicyFixture.noPlans])

        let without = try PolicyFixture.with().load(["OPENAI_API_KEY": ""])
        #expect(without.providers["openai"]?.apiKey == nil)
        #expect(without.warnings.map(\.description) == [
            "providers.yaml:2: providers.openai.api_key_env: environment variable OPENAI_API_KEY is not set; calls to 'openai' are refused with 502 until it is set",
            PolicyFixture.noPlans,
        ])
    }
}
