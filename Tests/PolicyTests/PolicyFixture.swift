import Foundation
import Policy

/// A throwaway policy directory with the given files, for one test.
struct PolicyFixture {
    let directory: String

    /// The warning of a directory without plans.yaml.
    static let noPlans = "plans.yaml: not found: every caller is unlimited (no rate limit, output cap, concurrency limit or budget)"

    init(_ files: [String: String]) throws {
        directory = NSTemporaryDirectory() + "tokenctl-policy-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, text) in files {
            try text.write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        }
    }

    func load(_ environment: [String: String] = [:]) throws(PolicyError) -> PolicySet {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try PolicyLoader.load(directory: directory, environment: environment)
    }

    /// The problems' descriptions, or [] if the directory loaded.
    func problems(_ environment: [String: String] = [:]) -> [String] {
        do {
            _ = try load(environment)
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    /// Minimal valid files; tests override one at a time.
    static let providers = """
        providers:
          openai: { dialect: openai, base_url: "https://api.openai.com/v1", api_key_env: OPENAI_API_KEY }
        models:
          - { match: "gpt-*", provider: openai }
        """
    static let prices = """
        - { model: "gpt-4o-mini", effective_from: "2024-07-18", input: "0.15", cached_input: "0.075", output: "0.60" }
        """

    static func with(providers: String = providers, prices: String = prices, gateway: String? = nil) throws -> PolicyFixture {
        var files = ["providers.yaml": providers, "prices.yaml": prices]
        if let gateway { files["gateway.yaml"] = gateway }
        return try PolicyFixture(files)
    }
}
