import FakeLLM
import Foundation
import Ledger
import Metering
import Testing

/// pd per token for the harness's prices (per 1M tokens × 10^6).
enum HarnessPrice {
    static let miniInput: Int64 = 150_000, miniCached: Int64 = 75_000, miniOutput: Int64 = 600_000
    static let embedInput: Int64 = 20_000
    static let haikuInput: Int64 = 800_000, haikuCached: Int64 = 80_000, haikuWrite: Int64 = 1_000_000, haikuOutput: Int64 = 4_000_000
}

@Suite("OpenAI dialect end to end")
struct OpenAIRelayTests {
    @Test("chat, non-streaming: identical bytes, exact usage and cost, provider key swapped in")
    func chatNonStreaming() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-cached-tokens": "7", "x-fake-reasoning-tokens": "3"])
        defer { h.shutdown() }
        let body = #"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there, proxy"}]}"#
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: body, requestID: "chat-1")

        let exchange = try #require(h.fake.exchange(requestID: "chat-1"))
        #expect(r.status == 200)
        #expect(r.complete)
        #expect(r.body == exchange.responseBody)
        #expect(r.header("x-request-id") == "chat-1")
        #expect(exchange.requestHeader("authorization") == "Bearer \(h.providerKey)")
        #expect(!exchange.requestHeaders.contains { $0.1.contains(h.aliceKey) })
        #expect(exchange.requestBody == Array(body.utf8))

        let expected = try #require(FakeUsage.expected(for: exchange))
        let row = try #require(try h.row("chat-1"))
        #expect(row.outcome == .ok)
        #expect(row.status == 200)
        #expect(row.user == "alice" && row.team == "research")
        #expect(row.usageSource == .provider)
        #expect(row.usage == Usage(inputTokens: expected.uncachedInputTokens, cachedInputTokens: 7,
                                   outputTokens: expected.outputTokens, reasoningTokens: 3))
        #expect(row.cost.picodollars == Int64(expected.uncachedInputTokens) * HarnessPrice.miniInput
                + 7 * HarnessPrice.miniCached + Int64(expected.outputTokens) * HarnessPrice.miniOutput)
        #expect(row.priceId == "gpt-4o-mini@2024-07-18")
        #expect(row.modelRequested == "gpt-4o-mini")
        #expect(row.stream == false)
    }

    @Test("chat, streaming without include_usage: usage injected upstream, its chunk stripped")
    func chatStreamingStripsInjectedUsage() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-chunk-gap-ms": "5"])
        defer { h.shutdown() }
        let body = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"stream please"}]}"#
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: body, requestID: "chat-s1")

        let exchange = try #require(h.fake.exchange(requestID: "chat-s1"))
        let sentUpstream = String(decoding: exchange.requestBody, as: UTF8.self)
        #expect(sentUpstream.contains(#""include_usage":true"#))
        let usageChunk = try #require(exchange.responseChunks.first {
            String(decoding: $0, as: UTF8.self).contains(#""choices":[]"#)
        })
        var expectedBytes = exchange.responseBody
        let range = try #require(expectedBytes.firstRange(of: usageChunk))
        expectedBytes.removeSubrange(range)
        #expect(r.status == 200)
        #expect(r.header("content-type")?.hasPrefix("text/event-stream") == true)
        #expect(r.body == expectedBytes)
        #expect(!r.text.contains(#""choices":[]"#))
        #expect(r.text.hasSuffix("data: [DONE]\n\n"))

        let expected = try #require(FakeUsage.expected(for: exchange))
        let row = try #require(try h.row("chat-s1"))
        #expect(row.stream)
        #expect(row.usage.outputTokens == expected.outputTokens)
        #expect(row.usage.inputTokens == expected.uncachedInputTokens)
        #expect(row.ttftMicros != nil)
        // The gateway lets the client's body go once the answer streams; the row keeps the
        // fingerprint of the body as the client sent it (not as it went upstream), and the same
        // body sent again has the same fingerprint (what retry detection matches).
        let sentByClient = try #require(body.data(using: .utf8))
        let fingerprint = sentByClient.withUnsafeBytes { RequestFingerprint.of($0) }
        #expect(row.requestHash == fingerprint)
        #expect(row.requestHash != exchange.requestBody.withUnsafeBytes { RequestFingerprint.of($0) })
        let again = try await h.post("/v1/chat/completions", key: h.aliceKey, json: body, requestID: "chat-s2")
        #expect(again.status == 200)
        #expect(try h.row("chat-s2")?.requestHash == fingerprint)
    }

    @Test("a server that refuses stream_options: with ask_stream_usage false a stream goes as sent, billed from its text; without, the row says what to set")
    func providerRefusingStreamOptions() async throws {
        let h = try ProxyHarness(providersForFake: { url in
            """
            providers:
              strict: { dialect: openai, base_url: "\(url)/v1", api_key_env: E2E_PROVIDER_KEY, ask_stream_usage: false,
                        headers: { x-fake-fail: refuse-stream-options } }
              unset:  { dialect: openai, base_url: "\(url)/v1", api_key_env: E2E_PROVIDER_KEY,
                        headers: { x-fake-fail: refuse-stream-options } }
            models:
              - { match: "gpt-4o-mini", provider: strict }
              - { match: "gpt-*", provider: unset }
            """
        })
        defer { h.shutdown() }
        let stream = #"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"stream please"}]}"#
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: stream, requestID: "so-1")
        #expect(r.status == 200 && r.text.hasSuffix("data: [DONE]\n\n"))
        let exchange = try #require(h.fake.exchange(requestID: "so-1"))
        #expect(exchange.requestBody == Array(stream.utf8))
        #expect(r.body == exchange.responseBody)
        let row = try #require(try h.row("so-1"))
        #expect(row.outcome == .ok && row.usageSource == .estimated)
        #expect(row.usage.outputTokens > 0 && row.cost > .zero)
        #expect(row.errorMessage == "tokens estimated from the request and the stream's text: provider 'strict' is not asked for a stream's usage (ask_stream_usage: false)")

        // The same server without the setting: the provider's 400 is relayed; the row and the
        // log (once) name the setting.
        let unset = #"{"model":"gpt-quota","stream":true,"messages":[{"role":"user","content":"stream please"}]}"#
        let refused = try await h.post("/v1/chat/completions", key: h.aliceKey, json: unset, requestID: "so-2")
        #expect(refused.status == 400 && refused.text.contains("Unknown parameter: 'stream_options'."))
        let refusedRow = try #require(try h.row("so-2"))
        #expect(refusedRow.outcome == .upstreamError && refusedRow.cost == .zero)
        #expect(refusedRow.errorMessage?.hasSuffix("Unknown parameter: 'stream_options'; tokenctl added stream_options to read the stream's usage; provider 'unset' refuses it: set ask_stream_usage: false for it in providers.yaml") == true,
                "\(refusedRow.errorMessage ?? "")")
        // A call that is not a stream goes as sent, with the provider's usage.
        let plain = #"{"model":"gpt-quota","messages":[{"role":"user","content":"hi"}]}"#
        #expect(try await h.post("/v1/chat/completions", key: h.aliceKey, json: plain, requestID: "so-3").status == 200)
        #expect(try h.row("so-3")?.usageSource == .provider)
    }

    @Test("chat, streaming with include_usage: byte-identical, chunks relayed one to one")
    func chatStreamingWithUsage() async throws {
        // 80 ms apart: at 20 ms, a full suite's load on two cores sometimes delayed the relay enough
        // for two deltas to arrive in one read.
        let h = try ProxyHarness(providerHeaders: ["x-fake-chunk-gap-ms": "80", "x-fake-chunks": "6"])
        defer { h.shutdown() }
        let body = #"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: body, requestID: "chat-s2")

        let exchange = try #require(h.fake.exchange(requestID: "chat-s2"))
        #expect(exchange.requestBody == Array(body.utf8))
        #expect(r.body == exchange.responseBody)
        // Each content delta, written 80 ms apart upstream, reaches the client as its own chunk.
        // (The last delta, finish and usage chunks are written back to back, so TCP may join them.)
        #expect(r.chunks.count >= 6)
        #expect(Array(r.chunks.prefix(6)) == Array(exchange.responseChunks.prefix(6)))
        let expected = try #require(FakeUsage.expected(for: exchange))
        let row = try #require(try h.row("chat-s2"))
        #expect(row.usage.outputTokens == expected.outputTokens)
        #expect(row.cost.picodollars == Int64(expected.uncachedInputTokens) * HarnessPrice.miniInput
                + Int64(expected.outputTokens) * HarnessPrice.miniOutput)
    }

    @Test("responses API, streaming and not, with cached and reasoning tokens")
    func responses() async throws {
        let h = try ProxyHarness(providerHeaders: ["x-fake-cached-tokens": "11", "x-fake-reasoning-tokens": "5"])
        defer { h.shutdown() }
        for (id, stream) in [("resp-1", false), ("resp-2", true)] {
            let body = #"{"model":"o4-mini","input":"think about it","stream":\#(stream)}"#
            let r = try await h.post("/v1/responses", key: h.bobKey, json: body, requestID: id)
            let exchange = try #require(h.fake.exchange(requestID: id))
            #expect(r.status == 200)
            #expect(r.body == exchange.responseBody)
            let expected = try #require(FakeUsage.expected(for: exchange))
            let row = try #require(try h.row(id))
            #expect(row.route == "responses")
            #expect(row.user == "bob" && row.team == nil)
            #expect(row.usage == Usage(inputTokens: expected.uncachedInputTokens, cachedInputTokens: 11,
                                       outputTokens: expected.outputTokens, reasoningTokens: 5))
            #expect(row.cost.picodollars == Int64(expected.uncachedInputTokens) * 1_100_000 + 11 * 275_000
                    + Int64(expected.outputTokens) * 4_400_000)
        }
    }

    @Test("embeddings: input tokens only")
    func embeddings() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let r = try await h.post("/v1/embeddings", key: h.aliceKey,
                                 json: #"{"model":"text-embedding-3-small","input":["a","b"]}"#, requestID: "emb-1")
        let exchange = try #require(h.fake.exchange(requestID: "emb-1"))
        #expect(r.status == 200)
        #expect(r.body == exchange.responseBody)
        let expected = try #require(FakeUsage.expected(for: exchange))
        let row = try #require(try h.row("emb-1"))
        #expect(row.usage == Usage(inputTokens: expected.uncachedInputTokens))
        #expect(row.cost.picodollars == Int64(expected.uncachedInputTokens) * HarnessPrice.embedInput)
    }

    @Test("GET /v1/models lists the routed, priced models")
    func models() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        let r = try await TestHTTPClient.send(port: h.port, method: .GET, path: "/v1/models",
                                              headers: [("authorization", "Bearer \(h.aliceKey)")])
        #expect(r.status == 200)
        let json = try JSONSerialization.jsonObject(with: Data(r.body)) as? [String: Any]
        let ids = (json?["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } ?? []
        #expect(ids.contains("gpt-4o-mini"))
        #expect(ids.contains("o4-mini"))
    }

    @Test("GET /v1/models/{id} (the SDKs' models.retrieve): a routed model in the caller's dialect, else 404")
    func oneModel() async throws {
        let h = try ProxyHarness()
        defer { h.shutdown() }
        func get(_ model: String, anthropic: Bool = false) async throws -> ReceivedResponse {
            try await TestHTTPClient.send(port: h.port, method: .GET, path: "/v1/models/" + model,
                                          headers: anthropic ? [("x-api-key", h.aliceKey), ("anthropic-version", "2023-06-01")]
                                                             : [("authorization", "Bearer \(h.aliceKey)")])
        }
        let listed = try await get("gpt-4o-mini")
        #expect(listed.status == 200)
        #expect(try jsonObject(listed)["id"] as? String == "gpt-4o-mini")
        #expect(try jsonObject(listed)["object"] as? String == "model")
        // A dated snapshot a glob routes is one too, though the list names only exact models.
        #expect(try await get("gpt-4o-mini-2024-07-18").status == 200)
        let claude = try await get("claude-sonnet-4-5", anthropic: true)
        #expect(claude.status == 200)
        #expect(try jsonObject(claude)["type"] as? String == "model")
        let unknown = try await get("llama-3")
        #expect(unknown.status == 404)
        #expect(try errorObject(unknown)["code"] as? String == "model_not_found")
    }
    @Test("a stream that ends after its usage without data: [DONE] (some OpenAI-compatible servers) is whole: ended, not cut, billed ok")
    func streamWithoutDoneMarker() async throws {
        let h = try ProxyHarness(providerHeaders: [FakeHeader.fail: FakeFailure.noDoneMarker.rawValue])
        defer { h.shutdown() }
        let asked = #"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#
        let r = try await h.post("/v1/chat/completions", key: h.aliceKey, json: asked, requestID: "nodone-1")
        let exchange = try #require(h.fake.exchange(requestID: "nodone-1"))
        #expect(r.status == 200 && r.complete)
        #expect(r.body == exchange.responseBody && !r.text.contains("[DONE]"))
        let row = try #require(try h.row("nodone-1"))
        #expect(row.outcome == .ok && row.usageSource == .provider && row.errorMessage == nil)
        #expect(row.usage.outputTokens == FakeUsage.expected(for: exchange)?.outputTokens)
        // The usage the gateway asked for is stripped; the stream still ends whole.
        let plain = try await h.post("/v1/chat/completions", key: h.aliceKey,
                                     json: #"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#, requestID: "nodone-2")
        #expect(plain.status == 200 && plain.complete && !plain.text.contains("\"usage\":{"))
        #expect(try h.row("nodone-2")?.outcome == .ok)
        // Legacy completions likewise.
        let completion = try await h.post("/v1/completions", key: h.aliceKey,
                                          json: #"{"model":"gpt-4o-mini","stream":true,"prompt":"hi"}"#, requestID: "nodone-3")
        #expect(completion.status == 200 && completion.complete)
        #expect(try h.row("nodone-3")?.outcome == .ok)
    }
}
