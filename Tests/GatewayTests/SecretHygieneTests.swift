import FakeLLM
import Foundation
import Ledger
import Logging
import Metering
import NIOConcurrencyHelpers
import NIOHTTP1
import Testing

/// Invariant 6: the provider key never reaches a client, a log line, a metric or the ledger,
/// even when the provider echoes request headers in an error; and nothing a client sends
/// (Host, an absolute URL) can point the gateway at another upstream.
@Suite("Secrets and upstream choice")
struct SecretHygieneTests {
    static let chat = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#
    static let stream = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
    static let message = #"{"model":"claude-3-5-haiku-latest","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#
    static let responsesStream = #"{"model":"gpt-4o-mini","stream":true,"input":"hi"}"#
    static let messageStream = #"{"model":"claude-3-5-haiku-latest","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#

    @Test("after traffic that includes errors echoing the gateway's key, the key is nowhere")
    func providerKeyNeverLeaks() async throws {
        let logs = LogCapture()
        let echo = try ProxyHarness(providerHeaders: ["x-fake-fail": "echo-credential-400"], logger: logs.logger)
        defer { echo.shutdown() }
        let key = echo.providerKey
        var responses: [ReceivedResponse] = []
        responses.append(try await echo.post("/v1/chat/completions", key: echo.aliceKey, json: Self.chat, requestID: "echo-openai"))
        responses.append(try await echo.post("/v1/messages", key: echo.aliceKey, dialect: "anthropic", json: Self.message,
                                             requestID: "echo-anthropic"))
        // The provider really did echo it: the check below would catch a relay that passed it on.
        // As written, as JSON escapes and in a header.
        let escapedKey = key.unicodeScalars.map { "\\u" + String(repeating: "0", count: 4 - String($0.value, radix: 16).count)
            + String($0.value, radix: 16) }.joined()
        let echoed = try #require(echo.fake.exchange(requestID: "echo-openai"))
        #expect(echoed.responseText.contains(key) && echoed.responseText.contains(escapedKey))
        #expect(echoed.responseHeaders.contains { $0.0 == "x-echo-authorization" && $0.1.contains(key) })
        #expect(echoed.responseChunks.count >= 2)
        for r in responses {
            #expect(r.status == 400)
            #expect(r.text.contains(CredentialScrub.replacement))
            #expect(!r.text.contains(escapedKey), "\(r.text)")
            #expect(r.header("x-echo-authorization")?.contains(CredentialScrub.replacement) == true)
        }
        #expect(try echo.row("echo-openai")?.errorMessage?.contains(CredentialScrub.replacement) == true)

        // Streams answered 200 whose error event, mid-stream, quotes the key: the chat chunk and
        // the Responses `error` event are relayed as they come, Anthropic's `error` ends it.
        let streamEcho = try ProxyHarness(providerHeaders: ["x-fake-fail": "echo-credential-mid-stream"], logger: logs.logger)
        defer { streamEcho.shutdown() }
        let streamKey = streamEcho.providerKey
        for (path, dialect, json, id) in [("/v1/chat/completions", "openai", Self.stream, "echo-chat-stream"),
                                          ("/v1/responses", "openai", Self.responsesStream, "echo-responses-stream"),
                                          ("/v1/messages", "anthropic", Self.messageStream, "echo-messages-stream")] {
            let r = try await streamEcho.post(path, key: streamEcho.aliceKey, dialect: dialect, json: json, requestID: id)
            responses.append(r)
            let echoed = try #require(streamEcho.fake.exchange(requestID: id))
            #expect(echoed.responseText.contains(streamKey) && echoed.responseChunks.count >= 3, "\(id)")
            #expect(r.status == 200 && r.text.contains(CredentialScrub.replacement), "\(id): \(r.text)")
            #expect(!r.text.contains(streamKey) && !r.text.contains(#"\u0070\u0072\u006f"#), "\(id): \(r.text)")
            let row = try #require(try streamEcho.row(id))
            #expect(row.outcome == .upstreamError && row.errorMessage?.contains(CredentialScrub.replacement) == true,
                    "\(id): \(String(describing: row.errorMessage))")
        }

        // Ordinary traffic and other failures on a second gateway sharing nothing but the checks.
        let plain = try ProxyHarness(logger: logs.logger)
        defer { plain.shutdown() }
        responses.append(try await plain.post("/v1/chat/completions", key: plain.aliceKey, json: Self.chat, requestID: "ok-1"))
        responses.append(try await plain.post("/v1/chat/completions", key: plain.aliceKey, json: Self.stream, requestID: "ok-2"))
        responses.append(try await plain.post("/v1/chat/completions", key: "tk-wrong", json: Self.chat, requestID: "bad-key"))
        responses.append(try await TestHTTPClient.send(port: plain.port, method: .GET, path: "/metrics"))
        responses.append(try await TestHTTPClient.send(port: plain.port, method: .GET, path: "/healthz"))

        for (harness, name) in [(echo, "echo"), (streamEcho, "stream echo"), (plain, "plain")] {
            let key = harness.providerKey
            for r in responses {
                #expect(!r.text.contains(key), "a response body of \(name)")
                #expect(!r.headers.contains { $0.1.contains(key) }, "a response header of \(name)")
            }
            // The ledger's files, byte for byte (rows, WAL, keys table, the rows' journal).
            let directory = URL(fileURLWithPath: harness.dbPath).deletingLastPathComponent()
            let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
                .filter { $0.hasPrefix(URL(fileURLWithPath: harness.dbPath).lastPathComponent) }
            #expect(files.contains { $0.contains(".rows-") }, "the journal of \(name) is there to read")
            for file in files {
                if let bytes = FileManager.default.contents(atPath: directory.appendingPathComponent(file).path) {
                    #expect(bytes.range(of: Data(key.utf8)) == nil, "\(file) of \(name)")
                }
            }
            #expect(!logs.text.contains(key), "logs")
        }
    }

    @Test("a Host header or an absolute URL naming another server does not reach it")
    func clientCannotChooseTheUpstream() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let decoy = try FakeLLMServer.start(FakeLLMConfiguration())
        defer { try? decoy.shutdown() }
        let decoyHost = "127.0.0.1:\(decoy.port)"
        let viaHost = try await TestHTTPClient.postJSON(port: h.port, path: "/v1/chat/completions", key: h.aliceKey,
                                                        json: Self.chat,
                                                        headers: [("host", decoyHost), ("x-request-id", "host-1")])
        #expect(viaHost.status == 200)
        #expect(h.fake.exchange(requestID: "host-1") != nil)
        let absolute = try await TestHTTPClient.postJSON(port: h.port, path: "http://\(decoyHost)/v1/chat/completions",
                                                         key: h.aliceKey, json: Self.chat,
                                                         headers: [("x-request-id", "absolute-1")])
        #expect(absolute.status == 404 || h.fake.exchange(requestID: "absolute-1") != nil)
        #expect(decoy.requestCount == 0)
    }
}

/// Every log line and its metadata, as text, from every logger made with `logger`.
final class LogCapture: Sendable {
    private let lines = NIOLockedValueBox<[String]>([])

    var logger: Logger {
        Logger(label: "capture") { [lines] label in Handler(label: label, lines: lines) }
    }

    var text: String { lines.withLockedValue { $0.joined(separator: "\n") } }

    struct Handler: LogHandler {
        let label: String
        let lines: NIOLockedValueBox<[String]>
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let error = event.error.map { " error: \($0)" } ?? ""
            lines.withLockedValue { $0.append("\(event.level) \(label): \(event.message) \(all)\(error)") }
        }
    }
}
