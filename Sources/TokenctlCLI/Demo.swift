import ArgumentParser
import FakeLLM
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Gateway
import Ledger
import Logging
import Policy
import Reports

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "See tokenctl work offline: fake provider + proxy on free ports, traffic for two users, the report.",
        discussion: """
            Starts FakeLLM and the proxy on 127.0.0.1, routes every model of the policy's price book \
            to FakeLLM, creates keys for alice and bob, sends a burst of OpenAI- and Anthropic-shaped \
            calls (streaming and not, plus one with a bad key), and prints the report.
            """)

    @Option(help: "Policy directory whose prices.yaml (and gateway.yaml) the demo uses.")
    var policies: String = "policies"

    @Option(help: "Ledger file for the demo (default: a new temporary file).")
    var db: String?

    func run() throws {
        // Checked before anything starts: run elsewhere than the source tree, the default
        // `policies` is not there, and "prices.yaml: missing required file" would not say where.
        let prices = URL(fileURLWithPath: policies).appendingPathComponent("prices.yaml").path
        guard FileManager.default.fileExists(atPath: prices) else {
            throw CommandFailure("the demo reads its price book from \(prices), which does not exist: run it from tokenctl's source directory, or pass --policies DIR (a policy directory with a prices.yaml)")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("tokenctl-demo-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }

        let providerKey = "demo-provider-key"
        let fake = try FakeLLMServer.start(FakeLLMConfiguration(chunkCount: 6, requiredAPIKey: providerKey))
        defer { try? fake.shutdown() }

        let policyDir = work.appendingPathComponent("policies")
        try FileManager.default.createDirectory(at: policyDir, withIntermediateDirectories: true)
        for file in ["prices.yaml", "gateway.yaml"] {
            let source = URL(fileURLWithPath: policies).appendingPathComponent(file)
            if FileManager.default.fileExists(atPath: source.path) {
                try FileManager.default.copyItem(at: source, to: policyDir.appendingPathComponent(file))
            }
        }
        try """
            providers:
              openai:    { dialect: openai,    base_url: "\(fake.baseURL)/v1", api_key_env: DEMO_PROVIDER_KEY }
              anthropic: { dialect: anthropic, base_url: "\(fake.baseURL)",    api_key_env: DEMO_PROVIDER_KEY }
            models:
              - { match: "claude-*", provider: anthropic }
              - { match: "*", provider: openai }
            """.write(to: policyDir.appendingPathComponent("providers.yaml"), atomically: true, encoding: .utf8)
        let policy: PolicySet
        do {
            policy = try PolicyLoader.load(directory: policyDir.path, environment: ["DEMO_PROVIDER_KEY": providerKey])
        } catch {
            throw CommandFailure("the demo policy did not load:\n\(error)")
        }

        let dbPath = db ?? work.appendingPathComponent("demo.sqlite").path
        let keys = try KeyStore(path: dbPath)
        var secrets: [String: String] = [:]
        for (user, team) in [("alice", "research"), ("bob", "support")] {
            let (id, secret) = APIKeySecret.generate()
            try keys.insert(APIKeyRecord(id: id, secretHash: APIKeySecret.hash(secret), user: user, team: team,
                                         createdAt: UnixTime.nowMicros()))
            secrets[user] = secret
        }
        keys.close()

        let server = try GatewayServer.start(configuration: GatewayConfiguration(port: 0, eventLoopThreads: 1),
                                             policy: policy, databasePath: dbPath, logger: Logger(label: "demo"))
        print("fake provider on \(fake.baseURL), proxy on \(server.baseURL), ledger \(dbPath)\n")

        let traffic = DemoTraffic(baseURL: server.baseURL)
        for call in DemoTraffic.burst {
            let secret = call.user.flatMap { secrets[$0] } ?? "tk-not-a-real-key"
            let status = try traffic.send(call, secret: secret)
            print("\(call.user ?? "stranger") \(call.label): HTTP \(status)")
        }
        try server.shutdown()

        let reader = try LedgerReader(path: dbPath)
        defer { reader.close() }
        for dimensions in [[ReportDimension.user], [.model]] {
            let report = try reader.report(ReportQuery(since: 0, until: UnixTime.nowMicros() + 1, groupBy: dimensions))
            print("\ncost by \(dimensions.map(\.rawValue).joined(separator: ", ")):")
            print(ReportRenderer.render(report, query: report.query, format: .table), terminator: "")
        }
    }
}

/// SDK-shaped calls the demo sends, and a blocking sender for them.
struct DemoTraffic {
    struct Call {
        var user: String?
        var label: String
        var path: String
        var anthropic: Bool
        var body: String
    }

    static let burst: [Call] = [
        Call(user: "alice", label: "chat gpt-4o-mini", path: "/v1/chat/completions", anthropic: false,
             body: #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Summarise our Q3 numbers."}]}"#),
        Call(user: "alice", label: "chat gpt-4o-mini (stream)", path: "/v1/chat/completions", anthropic: false,
             body: #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Try again, shorter."}]}"#),
        Call(user: "alice", label: "chat gpt-4o (stream, regenerate)", path: "/v1/chat/completions", anthropic: false,
             body: #"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Try again, shorter."}]}"#),
        Call(user: "alice", label: "embeddings", path: "/v1/embeddings", anthropic: false,
             body: #"{"model":"text-embedding-3-small","input":"quarterly revenue"}"#),
        Call(user: "bob", label: "messages claude-haiku-4-5", path: "/v1/messages", anthropic: true,
             body: #"{"model":"claude-haiku-4-5","max_tokens":256,"messages":[{"role":"user","content":"Draft a reply to this ticket."}]}"#),
        Call(user: "bob", label: "messages claude-sonnet-4 (stream)", path: "/v1/messages", anthropic: true,
             body: #"{"model":"claude-sonnet-4-20250514","max_tokens":512,"stream":true,"messages":[{"role":"user","content":"Explain the refund policy."}]}"#),
        Call(user: "bob", label: "responses gpt-4.1-mini", path: "/v1/responses", anthropic: false,
             body: #"{"model":"gpt-4.1-mini","input":"Classify this ticket."}"#),
        Call(user: nil, label: "chat with a bad key", path: "/v1/chat/completions", anthropic: false,
             body: #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#),
    ]

    var baseURL: String

    func send(_ call: Call, secret: String) throws -> Int {
        var request = URLRequest(url: URL(string: baseURL + call.path)!)
        request.httpMethod = "POST"
        request.httpBody = Data(call.body.utf8)
        request.setValue("application/json", forHTTPHeaderField: "content-type")
        if call.anthropic {
            request.setValue(secret, forHTTPHeaderField: "x-api-key")
            request.setValue("2023-06-01", forHTTPHeaderField: "anthropic-version")
        } else {
            request.setValue("Bearer \(secret)", forHTTPHeaderField: "authorization")
        }
        let done = DispatchSemaphore(value: 0)
        let result = LockedResult()
        URLSession.shared.dataTask(with: request) { _, response, error in
            result.set((response as? HTTPURLResponse)?.statusCode, error)
            done.signal()
        }.resume()
        done.wait()
        if let error = result.error { throw error }
        return result.status ?? 0
    }
}

/// The outcome of one URLSession call, handed from its callback thread to the waiting one.
final class LockedResult: @unchecked Sendable {
    private let lock = NSLock()
    private var _status: Int?
    private var _error: (any Error)?
    func set(_ status: Int?, _ error: (any Error)?) { lock.withLock { _status = status; _error = error } }
    var status: Int? { lock.withLock { _status } }
    var error: (any Error)? { lock.withLock { _error } }
}
