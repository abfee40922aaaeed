import Foundation
import Metering
import Testing
@testable import Policy

@Suite struct PolicySetTests {
    static let providers = """
        providers:
          openai: { dialect: openai, base_url: "https://api.openai.com/v1" }
          local: { dialect: openai, base_url: "http://127.0.0.1:11434/v1" }
          anthropic: { dialect: anthropic, base_url: "https://api.anthropic.com" }
        models:
          - { match: "gpt-4o-local", provider: local }
          - { match: "gpt-*", provider: openai }
          - { match: "o3*", provider: openai }
          - { match: "claude-*", provider: anthropic }
        """
    static let prices = """
        - { model: "gpt-4o-local", effective_from: "2024-01-01", input: "0", output: "0" }
        - { model: "gpt-4o", effective_from: "2024-05-13", input: "2.5", output: "10" }
        - { model: "o3", effective_from: "2025-04-16", input: "2", output: "8" }
        - { model: "claude-3-5-haiku-*", effective_from: "2024-11-04", input: "0.8", output: "4" }
        """

    @Test func firstMatchingRouteWins() throws {
        let set = try PolicyFixture.with(providers: Self.providers, prices: Self.prices).load()
        #expect(set.provider(forModel: "gpt-4o-local")?.name == "local")
        #expect(set.provider(forModel: "gpt-4o")?.name == "openai")
        #expect(set.provider(forModel: "o3-mini")?.name == "openai")
        #expect(set.provider(forModel: "claude-sonnet-4-5")?.name == "anthropic")
        #expect(set.provider(forModel: "o1") == nil)
        #expect(set.provider(forModel: "llama3") == nil)
        #expect(set.route(forModel: "gpt-4o-local")?.pattern == ModelPattern("gpt-4o-local"))
        #expect(set.routes.map(\.description) == [
            "gpt-4o-local -> local", "gpt-* -> openai", "o3* -> openai", "claude-* -> anthropic",
        ])
    }

    @Test("a call's longest life counts every attempt, wait and fallback, from its start")
    func longestCallCoversRetriesAndFallbacks() throws {
        let providers = """
            providers:
              slow: { dialect: openai, base_url: "http://127.0.0.1:9/v1", timeout_ms: 7200000,
                      connect_timeout_ms: 1000, retries: 1, max_concurrent: 4, queue_timeout_ms: 5000 }
              quick: { dialect: openai, base_url: "http://127.0.0.1:8/v1", timeout_ms: 60000,
                       connect_timeout_ms: 1000, retries: 0 }
            models:
              - { match: "big", provider: slow, fallbacks: ["small"] }
              - { match: "small", provider: quick }
            """
        let prices = """
            - { model: "big", effective_from: "2024-01-01", input: "1", output: "1" }
            - { model: "small", effective_from: "2024-01-01", input: "1", output: "1" }
            """
        let set = try PolicyFixture.with(providers: providers, prices: prices).load()
        let ms: Int64 = 1_000
        let body = Int64(set.gateway.bodyTimeoutMs) * ms
        // Three attempts of `slow` (first, one retry, one after a stale connection) with backoff,
        // after its queue; then two of `quick`.
        let slow = (5_000 + 3 * (1_000 + 7_200_000 + 2_000)) * ms
        let quick = (Int64(try #require(set.providers["quick"]).limits.queueTimeoutMs) + 2 * (1_000 + 60_000 + 2_000)) * ms
        #expect(set.serving(model: "big")?.longestCallMicros == body + slow + quick)
        #expect(set.serving(model: "small")?.longestCallMicros == body + quick)
        #expect(set.serving(model: "unrouted") == nil)
    }

    @Test func listedModelsAreExactRoutedNames() throws {
        let set = try PolicyFixture.with(providers: Self.providers, prices: Self.prices).load()
        #expect(set.listedModels() == ["gpt-4o", "gpt-4o-local", "o3"])
    }

    @Test("a mistyped model's nearest listed name, within two edits and unique, ignoring case")
    func suggestionForATypo() throws {
        let set = try PolicyFixture.with(providers: Self.providers, prices: Self.prices).load()
        #expect(set.listedModels() == ["gpt-4o", "gpt-4o-local", "o3"])
        #expect(set.suggestion(for: "gpt-4o-locall") == "gpt-4o-local")  // one added
        #expect(set.suggestion(for: "gpt-4o-lcoal") == "gpt-4o-local")   // two swapped
        #expect(set.suggestion(for: "GPT-4o") == "gpt-4o")               // case
        #expect(set.suggestion(for: "gpt4o") == "gpt-4o")
        #expect(set.suggestion(for: "gpt-4o-lo") == nil)                  // three away from both
        #expect(set.suggestion(for: "o3") == nil && set.suggestion(for: "") == nil)
        #expect(set.suggestion(for: "llama-3") == nil)
        #expect(set.suggestion(for: "o4") == "o3")
        #expect(set.suggestion(for: "gpt-4o" + String(repeating: "x", count: 1_000)) == nil)
        // Two as near: no guess.
        let twins = try PolicyFixture.with(providers: Self.providers, prices: Self.prices + """

            - { model: "o3x", effective_from: "2025-04-16", input: "2", output: "8" }
            """ ).load()
        #expect(twins.suggestion(for: "o3y") == nil)
        #expect(twins.suggestion(for: "o3xx") == "o3x")
        #expect(PolicySet.editDistance(Array("kitten".utf8), Array("sitting".utf8), atMost: 5) == 3)
        #expect(PolicySet.editDistance(Array("kitten".utf8), Array("sitting".utf8), atMost: 2) == 3)
        #expect(PolicySet.editDistance(Array("ab".utf8), Array("ba".utf8), atMost: 2) == 1)
    }

    @Test func exactRouteWithoutPriceIsAnErrorWhenRefusingAndAWarningWhenAllowing() throws {
        let providers = """
            providers:
              openai: { dialect: openai, base_url: "https://api.openai.com/v1" }
            models:
              - { match: "ft:gpt-4o:acme", provider: openai }
              - { match: "gpt-*", provider: openai }
              - { match: "o1*", provider: openai }
            """
        #expect(try PolicyFixture.with(providers: providers).problems() == [
            "providers.yaml:4: models[0].match: no price for model 'ft:gpt-4o:acme' in prices.yaml; every call would be refused (add a price, or set unpriced_models: allow in gateway.yaml)",
        ])
        let set = try PolicyFixture.with(providers: providers, prices: """
            - { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", output: "0.60" }
            - { model: "llama-3", effective_from: "2024-07-18", input: "0", output: "0" }
            - { model: "llama-3", effective_from: "2025-07-18", input: "0", output: "0" }
            """, gateway: "unpriced_models: allow\n").load()
        #expect(set.warnings.map(\.description) == [
            "providers.yaml:4: models[0].match: no price for model 'ft:gpt-4o:acme' in prices.yaml; calls for it will be recorded at zero cost",
            "providers.yaml:6: models[2].match: no price in prices.yaml matches any model of 'o1*'; calls for it will be recorded at zero cost",
            "prices.yaml:2: prices[1].model: no route in providers.yaml sends 'llama-3' to a provider; this price is unused",
            PolicyFixture.noPlans,
        ])
        #expect(set.listedModels() == ["ft:gpt-4o:acme", "gpt-4o-mini"])
    }

    /// The trial set gpt-4o-mini's date a year ahead: check said ok, and every call was refused.
    @Test("a routed model priced only from a later day is warned about at its price; one priced today too is not")
    func pricedOnlyLater() throws {
        let set = try PolicyFixture.with(prices: """
            - { model: "gpt-4o-mini", effective_from: "2999-01-01", input: "0.15", output: "0.60" }
            - { model: "gpt-4.1", effective_from: "2025-01-01", input: "2", output: "8" }
            - { model: "gpt-4.1", effective_from: "2999-01-01", input: "1", output: "4" }
            """).load(["OPENAI_API_KEY": "k"])
        #expect(set.warnings.filter { $0.file == "prices.yaml" }.map(\.description) == [
            "prices.yaml:1: prices[0].effective_from: 'gpt-4o-mini' has no price in effect yet: its first is from 2999-01-01 (UTC), and until then calls for it will be refused",
        ])
    }

    @Test func missingFilesAndDirectory() throws {
        #expect(try PolicyFixture([:]).problems() == [
            "providers.yaml: missing required file",
            "prices.yaml: missing required file",
        ])
        #expect(throws: PolicyError.self) { try PolicyLoader.load(directory: "/nonexistent/tokenctl", environment: [:]) }
        // A missing file is the one problem: plans' models and routes are not each said unpriced or unrouted.
        let plans = "defaults: { plan: p }\nplans: { p: { models: [\"gpt-4o-mini\", \"gpt-4.1*\"] } }\n"
        #expect(try PolicyFixture(["providers.yaml": PolicyFixture.providers, "plans.yaml": plans]).problems()
                == ["prices.yaml: missing required file"])
        #expect(try PolicyFixture(["prices.yaml": PolicyFixture.prices, "plans.yaml": plans]).problems()
                == ["providers.yaml: missing required file"])
    }

    @Test func strayYamlFilesAreWarnedAboutNotRead() throws {
        let fixture = try PolicyFixture([
            "providers.yaml": PolicyFixture.providers, "prices.yaml": PolicyFixture.prices,
            "gateway.yml": "max_body_bytes: oops\n", "README.md": "notes",
        ])
        #expect(try fixture.load().warnings.map(\.description) == [
            "providers.yaml:2: providers.openai.api_key_env: environment variable OPENAI_API_KEY is not set; calls to 'openai' are refused with 502 until it is set",
            PolicyFixture.noPlans,
            "gateway.yml: not a policy file tokenctl reads (expected gateway.yaml, providers.yaml, prices.yaml or plans.yaml); ignored",
        ])
    }

    @Test func versionFollowsTheBytes() throws {
        let a = try PolicyFixture.with().load().version
        let b = try PolicyFixture.with().load().version
        let c = try PolicyFixture.with(gateway: "max_body_bytes: 1024\n").load().version
        #expect(a.count == 12 && a.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(a == b)
        #expect(a != c)
    }

    @Test func errorDescriptionListsOneProblemPerLine() {
        let error = PolicyError(problems: [
            PolicyProblem(file: "a.yaml", line: 3, field: "x.y", message: "bad"),
            PolicyProblem(file: "b.yaml", line: 0, field: "", message: "missing required file"),
        ])
        #expect(error.description == "a.yaml:3: x.y: bad\nb.yaml: missing required file")
    }

    @Test func providerSecretsAreRedactedEverywhere() throws {
        let secret = "sk-proj-SECRET-0123456789"
        let set = try PolicyFixture.with().load(["OPENAI_API_KEY": secret])
        let provider = try #require(set.providers["openai"])
        #expect(provider.apiKey == secret)
        var dumped = ""
        dump(provider, to: &dumped)
        var dumpedSet = ""
        dump(set, to: &dumpedSet)
        for text in ["\(provider)", String(reflecting: provider), dumped, dumpedSet,
                     String(describing: set), String(reflecting: set), "\(set.providers)"] {
            #expect(!text.contains(secret))
        }
        #expect("\(provider)".contains("apiKey: <redacted>"))
        #expect(Provider(name: "l", dialect: .openai, baseURL: "http://x").description.contains("apiKey: <none>"))
    }
}

@Suite struct GlobRelationTests {
    @Test func covers() {
        func covers(_ a: String, _ b: String) -> Bool { GlobRelation.covers(ModelPattern(a), ModelPattern(b)) }
        #expect(covers("gpt-*", "gpt-4o"))
        #expect(covers("gpt-*", "gpt-4o-*"))
        #expect(covers("*", "anything*"))
        #expect(covers("gpt-*", "gpt-*"))
        #expect(covers("*-mini", "gpt-*-mini"))
        #expect(!covers("gpt-4o", "gpt-*"))
        #expect(!covers("gpt-4o-*", "gpt-*"))
        #expect(!covers("o1*", "o3*"))
        #expect(!covers("*-mini", "gpt-*"))
    }

    @Test func intersects() {
        func meet(_ a: String, _ b: String) -> Bool { GlobRelation.intersects(ModelPattern(a), ModelPattern(b)) }
        #expect(meet("gpt-*", "*-mini"))
        #expect(meet("claude-*", "claude-3-5-haiku-*"))
        #expect(meet("a*c", "ab*"))
        #expect(meet("gpt-4o", "gpt-4o"))
        #expect(!meet("gpt-*", "claude-*"))
        #expect(!meet("o1*", "o3*"))
        #expect(!meet("a*b", "*c"))
        #expect(!meet("gpt-4o", "gpt-4o-mini"))
    }
}
