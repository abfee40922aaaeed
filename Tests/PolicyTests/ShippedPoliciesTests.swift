import Foundation
import Metering
import Testing
import Policy

/// The `policies/` directory shipped in the repository must always load cleanly.
@Suite struct ShippedPoliciesTests {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("policies").path
    static let environment = ["OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"]

    @Test func loadsWithNoProblemsAndNoWarnings() throws {
        let set = try PolicyLoader.load(directory: Self.directory, environment: Self.environment)
        #expect(set.warnings.map(\.description) == [])
        #expect(set.gateway == .defaults)
        #expect(set.providers.keys.sorted() == ["anthropic", "openai"])
        #expect(set.providers["openai"]?.baseURL == "https://api.openai.com/v1")
        #expect(set.providers["anthropic"]?.header("anthropic-version") == "2023-06-01")
        #expect(set.version.count == 12)
    }

    @Test func loadsTheSameFromMemoryAsFromTheDirectory() throws {
        var files: [String: Data] = [:]
        for (name, _) in PolicyLoader.knownFiles {
            files[name] = FileManager.default.contents(atPath: Self.directory + "/" + name)
        }
        let fromDisk = try PolicyLoader.load(directory: Self.directory, environment: Self.environment)
        let fromMemory = try PolicyLoader.load(files: files, environment: Self.environment)
        #expect(fromMemory.version == fromDisk.version)
        files["prices.yaml"] = nil
        #expect(throws: PolicyError.self) { try PolicyLoader.load(files: files, environment: Self.environment) }
        do {
            _ = try PolicyLoader.load(files: files, environment: Self.environment)
        } catch {
            #expect(error.problems.contains { $0.file == "prices.yaml" && $0.message == "missing required file" })
        }
    }

    @Test func routesTheMainModels() throws {
        let set = try PolicyLoader.load(directory: Self.directory, environment: Self.environment)
        for model in ["gpt-4o-mini", "gpt-5", "o1", "o3-mini", "o4-mini", "text-embedding-3-small"] {
            #expect(set.provider(forModel: model)?.name == "openai", "\(model)")
        }
        for model in ["claude-sonnet-4-5-20250929", "claude-haiku-4-5", "claude-opus-4-1"] {
            #expect(set.provider(forModel: model)?.name == "anthropic", "\(model)")
        }
        #expect(set.provider(forModel: "llama-3.1-70b") == nil)
        let listed = set.listedModels()
        #expect(listed.contains("gpt-4o-mini") && listed.contains("claude-sonnet-4-5"))
        #expect(!listed.contains { $0.contains("*") })
    }

    @Test func pricesResolveExactlyIncludingSnapshotsAndChanges() throws {
        let set = try PolicyLoader.load(directory: Self.directory, environment: Self.environment)
        let today = Day("2026-11-22")!
        let mini = try #require(set.prices.price(for: "gpt-4o-mini-2024-07-18", on: today))
        #expect(mini.input.picodollars == 150_000 && mini.cachedInput.picodollars == 75_000)
        #expect(mini.output.picodollars == 600_000)
        // The first gpt-4o snapshot keeps its launch price; exact beats the snapshot glob.
        #expect(set.prices.price(for: "gpt-4o-2024-05-13", on: today)?.input == Money(dollars: "0.000005"))
        #expect(set.prices.price(for: "gpt-4o-2024-08-06", on: today)?.input == Money(dollars: "0.0000025"))
        // o3's price cut takes effect on its day.
        #expect(set.prices.price(for: "o3", on: Day("2025-06-09")!)?.output == Money(dollars: "0.00004"))
        #expect(set.prices.price(for: "o3", on: Day("2025-06-10")!)?.output == Money(dollars: "0.000008"))
        let sonnet = try #require(set.prices.price(for: "claude-sonnet-4-5-20250929", on: today))
        #expect(sonnet.cacheWrite == Money(dollars: "0.00000375") && sonnet.cachedInput == Money(dollars: "0.0000003"))
        // Every model in the brief has a price today.
        for model in ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o3", "o3-mini",
                      "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano", "text-embedding-3-small", "text-embedding-3-large",
                      "claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-haiku-20241022"] {
            #expect(set.prices.price(for: model, on: today) != nil, "\(model)")
        }
        #expect(set.prices.entries.allSatisfy { !$0.source.isEmpty })
    }
}
